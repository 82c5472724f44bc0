-- Issue 14 item 3: a meter replaced by a new one in the same room. The old
-- meter is retired (keeps its row and history); its remaining energy is
-- carried to the new meter as ledger entries of the replacement (not of an
-- order) and delivered to it through the delivery queue like a purchase.
create table meter_replacement (
    id integer primary key,
    old_meter_id bigint not null unique references meter (id),
    new_meter_id bigint not null unique references meter (id),
    -- the old meter's register and balance as last read (null: never read)
    last_total_centikwh bigint,
    last_remaining_centikwh bigint,
    last_read_at_ms bigint,
    -- the final register reading a technician typed (null: none)
    final_total_centikwh bigint,
    -- energy owed to the new meter (0: nothing to deliver)
    carried_centikwh bigint not null check (carried_centikwh >= 0),
    -- the new meter's purchase number of the carried energy, once assigned
    purchase_seq bigint,
    delivered_at_ms bigint,
    reason text not null,
    operator_name text not null,
    at_ms bigint not null
);
-- SQLite cannot drop a NOT NULL: the ledger table is rebuilt (nothing
-- references it), same columns in the same order plus replacement_id.
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
    check ((order_id is null) <> (replacement_id is null)),
    unique (order_id, kind)
);
insert into ledger_transfer_new (id, order_id, kind, debit_account, credit_account, amount, unit, created_at_ms)
select id, order_id, kind, debit_account, credit_account, amount, unit, created_at_ms from ledger_transfer;
drop table ledger_transfer;
alter table ledger_transfer_new rename to ledger_transfer;
create unique index ledger_transfer_replacement on ledger_transfer (replacement_id, kind)
    where replacement_id is not null;
