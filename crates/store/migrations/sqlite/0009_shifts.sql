-- Issue 13 item 3: a cashier's counter shifts and the sales made in them.
create table shift (
    id integer primary key,
    operator_id bigint not null references operator (id),
    opened_at_ms bigint not null,
    -- Bumped by every sale in the same transaction, guarded by closed_at_ms
    -- is null: the row lock that makes "no sale into a closed shift" hold.
    sales_count bigint not null default 0,
    closed_at_ms bigint,
    counted_cash_fen bigint,
    expected_cash_fen bigint,
    signed_off_by bigint references operator (id),
    signed_off_at_ms bigint,
    check ((closed_at_ms is null) = (counted_cash_fen is null)),
    check (signed_off_at_ms is null or closed_at_ms is not null)
);
-- One open shift per cashier.
create unique index shift_one_open on shift (operator_id) where closed_at_ms is null;
create index shift_operator on shift (operator_id, opened_at_ms);
-- Which shift sold an order, and how it was paid (cash or card; both are
-- `counter` orders).
create table shift_sale (
    order_id bigint primary key references orders (id),
    shift_id bigint not null references shift (id),
    tender text not null check (tender in ('cash', 'card'))
);
create index shift_sale_shift on shift_sale (shift_id);
