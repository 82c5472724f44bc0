-- A staff parameter write is a row per meter (issue 14 item 6, part 4): the
-- vendor power limit (04A00101) and malicious-load settings (04A00102/03)
-- written with DL/T 645 14H and read back. Its own table rather than a
-- generalised relay_command: the payload (several nullable values and their
-- read-back) and the outcome differ, the state machine and fencing are the
-- same (store::meter_params).
create table meter_param_command (
    id integer primary key,
    meter_id bigint not null references meter (id),
    -- what to write; null: leave as it is. At least one is set.
    power_limit_w bigint check (power_limit_w between 100 and 10000),
    malicious_step_w bigint check (malicious_step_w between 100 and 5000),
    malicious_pf_milli bigint check (malicious_pf_milli > 500 and malicious_pf_milli < 1000),
    operator_id bigint references operator (id),
    operator_name text not null,
    client_ip text not null,
    state text not null check (state in ('queued', 'sending', 'done', 'failed', 'cancelled')),
    lease_epoch bigint not null default 0,
    locked_by text,
    locked_until_ms bigint,
    attempts bigint not null default 0,
    -- the values read back after the writes
    read_power_limit_w bigint,
    read_malicious_step_w bigint,
    read_malicious_pf_milli bigint,
    -- the meter's error reply or the mismatch, for staff
    error text,
    created_at_ms bigint not null,
    updated_at_ms bigint not null,
    check (power_limit_w is not null or malicious_step_w is not null or malicious_pf_milli is not null)
);
create index meter_param_command_open on meter_param_command (state, created_at_ms) where state in ('queued', 'sending');
create index meter_param_command_meter on meter_param_command (meter_id, id);
