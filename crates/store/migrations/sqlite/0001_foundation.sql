-- dormwatt foundation schema (SQLite). Keep in step with ../postgres/0001_foundation.sql:
-- same tables, same columns, same constraints; only the id column type differs.
-- Units are last in column names; money is integer fen, energy integer 0.01 kWh,
-- instants integer unix milliseconds.

create table area (
    id integer primary key,
    code text not null unique,
    name_zh text not null,
    name_en text not null,
    unit_price_centifen_per_kwh bigint not null check (unit_price_centifen_per_kwh > 0),
    order_kwh_max bigint not null default 500 check (order_kwh_max > 0),
    time_zone text not null default 'Asia/Shanghai',
    created_at_ms bigint not null
);

create table building (
    id integer primary key,
    area_id bigint not null references area (id),
    name_zh text not null,
    name_en text not null,
    position bigint not null default 0,
    unique (area_id, name_zh)
);

create table room (
    id integer primary key,
    building_id bigint not null references building (id),
    number text not null,
    floor bigint not null,
    unique (building_id, number)
);

create table gateway (
    id integer primary key,
    building_id bigint not null references building (id),
    name text not null unique,
    -- 'dial': we connect to host:port; 'listen': the gateway dials us and registers with `name`.
    mode text not null check (mode in ('dial', 'listen')),
    host text not null default '',
    port bigint not null default 0,
    enabled boolean not null default true
);

create table bus (
    id integer primary key,
    gateway_id bigint not null references gateway (id),
    port bigint not null,
    baud bigint not null check (baud > 0),
    unique (gateway_id, port)
);

create table meter (
    id integer primary key,
    address text not null unique check (length(address) = 12),
    area_id bigint not null references area (id),
    room_id bigint not null references room (id),
    bus_id bigint references bus (id),
    profile text not null default 'dlt645-ref',
    -- null: the area's tariff applies.
    unit_price_centifen_per_kwh bigint,
    low_balance_centikwh bigint not null default 500,
    -- the meter refuses a recharge that would take its balance above this (hoarding limit).
    hoard_limit_centikwh bigint not null default 99999999,
    -- null: the factory default password 000000 is still in force.
    password_hash text,
    -- the last purchase sequence number assigned to an order for this meter.
    purchase_seq_last bigint not null default 0,
    created_at_ms bigint not null
);
create index meter_bus on meter (bus_id);
create index meter_room on meter (room_id);

create table meter_state (
    meter_id bigint primary key references meter (id),
    online boolean not null default false,
    last_seen_at_ms bigint,
    missed_polls bigint not null default 0,
    relay_closed boolean,
    -- why the relay is open: balance, malicious_load, over_power, staff, lockout.
    relay_reason text,
    relay_restore_at_ms bigint,
    power_w bigint,
    remaining_centikwh bigint,
    remaining_at_ms bigint,
    total_centikwh bigint,
    voltage_dv bigint,
    purchase_count bigint,
    status_word bigint,
    clock_offset_ms bigint,
    updated_at_ms bigint not null
);

create table meter_event (
    id integer primary key,
    meter_id bigint not null references meter (id),
    at_ms bigint not null,
    kind text not null,
    detail text not null default ''
);
create index meter_event_meter on meter_event (meter_id, at_ms);

-- Compact readings: one row per (meter, quantity, instant).
create table reading (
    meter_id bigint not null references meter (id),
    quantity text not null,
    at_ms bigint not null,
    value bigint not null,
    primary key (meter_id, quantity, at_ms)
);

-- Daily usage per campus-local day (day = days since 1970-01-01 in the campus time zone).
-- A day that could not be read has usage null and status 'missing' (S4), never zero.
create table daily_usage (
    meter_id bigint not null references meter (id),
    day bigint not null,
    usage_centikwh bigint,
    total_end_centikwh bigint,
    status text not null check (status in ('ok', 'missing')),
    updated_at_ms bigint not null,
    primary key (meter_id, day)
);

create table student (
    id integer primary key,
    openid text not null unique,
    name text not null default '',
    phone text not null default '',
    is_demo boolean not null default false,
    -- WeChat "snapshot" users (is_snapshotuser) can look but never bind or pay.
    is_snapshot boolean not null default false,
    created_at_ms bigint not null
);

create table binding (
    id integer primary key,
    student_id bigint not null references student (id),
    meter_id bigint not null references meter (id),
    is_default boolean not null default false,
    created_at_ms bigint not null,
    unique (student_id, meter_id)
);
create index binding_meter on binding (meter_id);

create table bind_attempt (
    id integer primary key,
    student_id bigint not null,
    meter_address text not null,
    client_ip text not null,
    ok boolean not null,
    at_ms bigint not null
);
create index bind_attempt_student on bind_attempt (student_id, at_ms);
create index bind_attempt_meter on bind_attempt (meter_address, at_ms);
create index bind_attempt_ip on bind_attempt (client_ip, at_ms);

create table session (
    token_hash text primary key,
    student_id bigint not null references student (id),
    csrf_token text not null,
    created_at_ms bigint not null,
    expires_at_ms bigint not null
);

create table orders (
    id integer primary key,
    out_trade_no text not null unique,
    meter_id bigint not null references meter (id),
    -- the buyer when bought in the pages; null at the counter.
    student_id bigint references student (id),
    area_id bigint not null references area (id),
    kwh bigint not null check (kwh > 0),
    unit_price_centifen_per_kwh bigint not null,
    amount_fen bigint not null check (amount_fen > 0),
    channel text not null check (channel in ('wechat', 'counter')),
    state text not null check (state in ('unpaid', 'charging', 'delayed', 'completed', 'closed', 'refunding', 'refunded')),
    -- whether the buyer had the meter bound when the order was created (I8).
    buyer_bound boolean not null default false,
    operator text,
    prepay_id text,
    transaction_id text unique,
    purchase_seq bigint,
    created_at_ms bigint not null,
    expires_at_ms bigint not null,
    paid_at_ms bigint,
    completed_at_ms bigint,
    delayed_at_ms bigint,
    closed_at_ms bigint,
    refund_no text unique,
    refunded_at_ms bigint,
    updated_at_ms bigint not null,
    unique (meter_id, purchase_seq)
);
create index orders_student on orders (student_id, created_at_ms);
create index orders_state on orders (state, created_at_ms);
create index orders_meter on orders (meter_id, created_at_ms);

create table ledger_transfer (
    id integer primary key,
    order_id bigint not null references orders (id),
    kind text not null,
    debit_account text not null,
    credit_account text not null,
    amount bigint not null check (amount > 0),
    unit text not null check (unit in ('fen', 'centikwh')),
    created_at_ms bigint not null,
    unique (order_id, kind)
);

-- Every payment notification we received, accepted or not (audit and reconciliation).
create table payment_notification (
    id integer primary key,
    provider text not null,
    out_trade_no text,
    transaction_id text,
    amount_fen bigint,
    outcome text not null,
    received_at_ms bigint not null
);

-- Durable jobs: claimed with a lease, retried with backoff, dead-lettered after attempts_max.
create table job (
    id integer primary key,
    queue text not null,
    -- idempotency key: at most one live job per key (e.g. 'deliver:<order id>').
    dedup_key text unique,
    payload text not null default '{}',
    priority bigint not null default 0,
    state text not null check (state in ('queued', 'done', 'dead')),
    run_at_ms bigint not null,
    attempts bigint not null default 0,
    attempts_max bigint not null,
    locked_by text,
    locked_until_ms bigint,
    last_error text,
    created_at_ms bigint not null,
    updated_at_ms bigint not null
);
create index job_ready on job (queue, state, run_at_ms);

create table notice (
    id integer primary key,
    area_id bigint references area (id),
    title text not null,
    body text not null,
    created_at_ms bigint not null
);

create table message (
    id integer primary key,
    student_id bigint not null references student (id),
    kind text not null,
    title text not null,
    body text not null,
    dedup_key text unique,
    created_at_ms bigint not null,
    read_at_ms bigint
);
create index message_student on message (student_id, created_at_ms);
