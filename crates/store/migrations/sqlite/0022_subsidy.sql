-- The free monthly allowance (issue 14 item 6, E4): kWh per room per month
-- for an area or one building (a building's setting before its area's).
alter table campus_policy add column subsidy_centikwh_per_month bigint
    check (subsidy_centikwh_per_month >= 0);
-- One credit per (room, calendar month in the campus time zone): the unique
-- key decides between two runs on two nodes. The energy goes to the room's
-- meter at the time of the run through the delivery queue (`subsidy:<id>`),
-- with its own purchase number, like a replacement's carried energy.
create table subsidy (
    id integer primary key,
    room_id bigint not null references room (id),
    -- 'YYYY-MM'
    month text not null check (length(month) = 7),
    meter_id bigint not null references meter (id),
    centikwh bigint not null check (centikwh > 0),
    purchase_seq bigint,
    delivered_at_ms bigint,
    operator_name text not null,
    at_ms bigint not null,
    unique (room_id, month)
);
create index subsidy_meter on subsidy (meter_id) where delivered_at_ms is null;
create index subsidy_month on subsidy (month);
-- The ledger's transfers of a subsidy: SQLite cannot change a CHECK, so
-- the table is rebuilt once more (nothing references it).
create table ledger_transfer_new (
    id integer primary key,
    order_id bigint references orders (id),
    kind text not null,
    debit_account text not null,
    credit_account text not null,
    amount bigint not null check (amount > 0),
    unit text not null check (unit in ('fen', 'centikwh')),
    created_at_ms bigint not null,
    replacement_id bigint references meter_replacement (id),
    subsidy_id bigint references subsidy (id),
    check ((order_id is not null) + (replacement_id is not null) + (subsidy_id is not null) = 1),
    unique (order_id, kind)
);
insert into ledger_transfer_new (id, order_id, kind, debit_account, credit_account, amount, unit, created_at_ms, replacement_id)
select id, order_id, kind, debit_account, credit_account, amount, unit, created_at_ms, replacement_id from ledger_transfer;
drop table ledger_transfer;
alter table ledger_transfer_new rename to ledger_transfer;
create unique index ledger_transfer_replacement on ledger_transfer (replacement_id, kind)
    where replacement_id is not null;
create unique index ledger_transfer_subsidy on ledger_transfer (subsidy_id, kind)
    where subsidy_id is not null;
