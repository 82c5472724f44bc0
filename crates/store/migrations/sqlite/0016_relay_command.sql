-- A staff relay command is a row (issue 14 item 5): the web node that takes
-- it and the head-end that sends it may be different processes. The
-- head-end claims a command with a lease (`locked_by`, `locked_until_ms`)
-- and a fencing epoch, sends it, and records the outcome only where the
-- row is still `sending` under its epoch (store::relay).
create table relay_command (
    id integer primary key,
    meter_id bigint not null references meter (id),
    command text not null check (command in ('trip', 'close', 'keep_power', 'keep_power_release')),
    -- mandatory and bounded (store::relay::REASON_CHARS_MAX; length counts characters on both backends).
    reason text not null check (length(reason) between 1 and 200),
    operator_id bigint references operator (id),
    operator_name text not null,
    client_ip text not null,
    state text not null check (state in ('queued', 'sending', 'done', 'failed', 'cancelled')),
    lease_epoch bigint not null default 0,
    locked_by text,
    locked_until_ms bigint,
    attempts bigint not null default 0,
    -- status word 3 read back after the command, and the relay it shows.
    status_word bigint,
    relay_closed boolean,
    error text,
    created_at_ms bigint not null,
    updated_at_ms bigint not null
);
create index relay_command_open on relay_command (state, created_at_ms) where state in ('queued', 'sending');
create index relay_command_meter on relay_command (meter_id, id);
-- Keep-power (保电): set when a keep-power command is confirmed, cleared by
-- its release; nothing trips a meter for balance while it is set.
alter table meter_state add column keep_power boolean not null default false;
