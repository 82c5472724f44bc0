-- Issue 13 items 5-6: why an order needs a person (the exceptions queue),
-- how staff settled it, and who refunded what.
--
-- One row per reason an order was flagged; open while resolved_at_ms is
-- null. At most one open flag per (order, kind): raising it again changes
-- nothing until staff (or the order's own completion) resolve it.
create table order_flag (
    id integer primary key,
    order_id bigint not null references orders (id),
    -- delayed | recharge_refused | seq_gap | refund_failed | refund_abnormal | reconciliation | <head-end alarm kind>
    kind text not null,
    detail text not null,
    raised_at_ms bigint not null,
    resolved_at_ms bigint,
    -- redelivered | refunded | noted | delivered
    resolution text,
    resolved_by text,
    note text
);
create unique index order_flag_open on order_flag (order_id, kind) where resolved_at_ms is null;
create index order_flag_order on order_flag (order_id, id);
create index order_flag_open_raised on order_flag (raised_at_ms) where resolved_at_ms is null;
-- A refund staff asked for: the refunding operator (a counter refund is
-- cash they pay back at the counter), by refund number (one per attempt).
create table staff_refund (
    refund_no text primary key,
    order_id bigint not null references orders (id),
    channel text not null,
    amount_fen bigint not null,
    operator_id bigint references operator (id),
    operator_name text not null,
    client_ip text not null,
    requested_at_ms bigint not null
);
create index staff_refund_order on staff_refund (order_id);
create index staff_refund_operator on staff_refund (operator_name, requested_at_ms);
-- A move-out settlement (docs/MOVE-OUT.md): the energy stays in the
-- room's meter for its next occupant; the leaving students' bindings end.
create table move_out (
    id integer primary key,
    meter_id bigint not null references meter (id),
    -- the meter's balance as last read (null: never read), and when
    remaining_centikwh bigint,
    remaining_at_ms bigint,
    unbound_students bigint not null,
    operator_id bigint references operator (id),
    operator_name text not null,
    note text not null,
    at_ms bigint not null
);
create index move_out_meter on move_out (meter_id, at_ms);
-- Orders already delayed when this migration runs are in the queue too.
insert into order_flag (order_id, kind, detail, raised_at_ms)
select o.id,
       case when j.state = 'dead' and j.last_error like 'recharge_refused%' then 'recharge_refused'
            when j.state = 'dead' then 'seq_gap'
            else 'delayed' end,
       coalesce(j.last_error, 'not delivered within the delivery window'),
       coalesce(o.delayed_at_ms, o.updated_at_ms)
from orders o left join job j on j.dedup_key = 'deliver:' || cast(o.id as text)
where o.state = 'delayed';
