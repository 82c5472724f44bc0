//! Ledger rows and the invariant checker (reliability.md I1–I9).

use crate::{Db, Result, Tx, on_db, on_tx};
use domain::OrderId;
use domain::ledger::Transfer;
use serde::Serialize;

/// Writes transfers for one order in the caller's transaction. The unique
/// (order, kind) constraint makes a second write of the same event fail
/// rather than double a movement (I2).
pub async fn insert(
    tx: &mut Tx,
    order_id: OrderId,
    transfers: &[Transfer],
    now_ms: i64,
) -> Result<()> {
    for t in transfers {
        on_tx!(tx, |c| {
            sqlx::query(
            "insert into ledger_transfer (order_id, kind, debit_account, credit_account, amount, unit, created_at_ms)
             values ($1, $2, $3, $4, $5, $6, $7)"
        )
        .bind(order_id.get())
        .bind(t.kind.as_str())
        .bind(&t.debit)
        .bind(&t.credit)
        .bind(t.amount)
        .bind(t.unit.as_str())
        .bind(now_ms)
        .execute(c)
        .await?.rows_affected()
        });
    }
    Ok(())
}

/// Writes a transfer of meter replacement `replacement_id` (not of an
/// order) in the caller's transaction; unique per (replacement, kind).
pub async fn insert_for_replacement(
    tx: &mut Tx,
    replacement_id: i64,
    t: &Transfer,
    now_ms: i64,
) -> Result<()> {
    on_tx!(tx, |c| {
        sqlx::query(
            "insert into ledger_transfer (replacement_id, kind, debit_account, credit_account, amount, unit, created_at_ms)
             values ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(replacement_id)
        .bind(t.kind.as_str())
        .bind(&t.debit)
        .bind(&t.credit)
        .bind(t.amount)
        .bind(t.unit.as_str())
        .bind(now_ms)
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(())
}

/// Writes a transfer of subsidy `subsidy_id` (a room's free monthly
/// allowance) in the caller's transaction; unique per (subsidy, kind).
pub async fn insert_for_subsidy(
    tx: &mut Tx,
    subsidy_id: i64,
    t: &Transfer,
    now_ms: i64,
) -> Result<()> {
    on_tx!(tx, |c| {
        sqlx::query(
            "insert into ledger_transfer (subsidy_id, kind, debit_account, credit_account, amount, unit, created_at_ms)
             values ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(subsidy_id)
        .bind(t.kind.as_str())
        .bind(&t.debit)
        .bind(&t.credit)
        .bind(t.amount)
        .bind(t.unit.as_str())
        .bind(now_ms)
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(())
}

/// The balance of one account (credits minus debits) in one unit.
pub async fn balance(db: &Db, account: &str, unit: &str) -> Result<i64> {
    Ok(on_db!(db, |p| {
        sqlx::query_scalar(
        "select coalesce(cast(sum(case when credit_account = $1 then amount else 0 end)
                               - sum(case when debit_account = $1 then amount else 0 end) as bigint), 0)
         from ledger_transfer where unit = $2 and (credit_account = $1 or debit_account = $1)"
    )
    .bind(account)
    .bind(unit)
    .fetch_one(p)
    .await?
    }))
}

/// One broken invariant, with enough detail for staff to find it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant (I1…I9).
    pub invariant: &'static str,
    /// What is wrong.
    pub detail: String,
}

/// Checks the ledger invariants on a live database. An empty result means
/// every invariant holds.
pub async fn check(db: &Db) -> Result<Vec<Violation>> {
    let mut v = Vec::new();
    let mut add = |invariant, rows: Vec<String>| {
        v.extend(
            rows.into_iter()
                .map(|detail| Violation { invariant, detail }),
        );
    };

    // I1: every transfer moves a positive amount from one account to another,
    // so per unit the balances sum to zero. Checked on the aggregates anyway,
    // as a guard against rows written outside `insert`.
    add(
        "I1",
        strings(
            db,
            "select 'transfer ' || cast(id as text) || ' moves ' || cast(amount as text) || ' ' || unit
                    || ' from ' || debit_account || ' to ' || credit_account
             from ledger_transfer where amount <= 0 or debit_account = credit_account",
        )
        .await?,
    );

    // I2: at most one transfer per (order, kind).
    add(
        "I2",
        strings(
            db,
            "select 'order ' || cast(order_id as text) || ' has ' || cast(count(*) as text) || ' transfers of kind ' || kind
             from ledger_transfer where order_id is not null group by order_id, kind having count(*) > 1",
        )
        .await?,
    );

    // I3: at most one order per (meter, purchase_seq) (a unique constraint),
    // and the sequence numbers a meter's orders use are contiguous.
    add(
        "I3",
        strings(
            db,
            "select 'meter ' || cast(meter_id as text) || ': purchase seqs ' || cast(min(purchase_seq) as text) || '..'
                    || cast(max(purchase_seq) as text) || ' over ' || cast(count(*) as text) || ' orders'
             from orders where purchase_seq is not null group by meter_id
             having max(purchase_seq) - min(purchase_seq) + 1 <> count(*)",
        )
        .await?,
    );

    // I4: each order carries exactly the movements its state implies.
    add("I4", strings(db, ORDER_LEDGER_MISMATCH).await?);
    add(
        "I4",
        strings(
            db,
            "select 'prepaid balance ' || cast(coalesce(l.bal, 0) as text) || ' fen but open paid orders hold '
                    || cast(coalesce(o.held, 0) as text)
             from (select cast(sum(case when credit_account = 'prepaid' then amount else -amount end) as bigint) as bal
                   from ledger_transfer where unit = 'fen' and (credit_account = 'prepaid' or debit_account = 'prepaid')) l,
                  (select cast(sum(amount_fen) as bigint) as held from orders
                   where state in ('charging', 'delayed', 'refunding')) o
             where coalesce(l.bal, 0) <> coalesce(o.held, 0)",
        )
        .await?,
    );

    // I5: energy delivered to each meter equals the kWh of its completed orders.
    add(
        "I5",
        strings(
            db,
            "select 'meter ' || cast(o.meter_id as text) || ': completed ' || cast(o.done as text)
                    || ' centikWh but ledger delivered ' || cast(coalesce(l.delivered, 0) as text)
             from (select meter_id, cast(sum(kwh * 100) as bigint) as done from orders where state = 'completed'
                   group by meter_id) o
             left join (select credit_account, cast(sum(amount) as bigint) as delivered from ledger_transfer
                        where kind = 'energy_delivered' group by credit_account) l
               on l.credit_account = 'delivered:' || cast(o.meter_id as text)
             where coalesce(l.delivered, 0) <> o.done",
        )
        .await?,
    );

    // I6: terminal and paid states carry their timestamps (the state machine
    // only moves forward, so a completed order was paid first).
    add(
        "I6",
        strings(
            db,
            "select 'order ' || out_trade_no || ' is ' || state || ' without the timestamps of that state' from orders
             where (state in ('charging', 'delayed', 'completed', 'refunding', 'refunded') and paid_at_ms is null)
                or (state = 'completed' and completed_at_ms is null)
                or (state = 'refunded' and refunded_at_ms is null)",
        )
        .await?,
    );

    // I7: a WeChat transaction id belongs to exactly one order, and only to a paid one.
    add(
        "I7",
        strings(
            db,
            "select 'order ' || out_trade_no || ' holds transaction ' || transaction_id || ' but is ' || state
             from orders where transaction_id is not null and state in ('unpaid', 'closed')",
        )
        .await?,
    );

    // I8: an order's area is its meter's area.
    add(
        "I8",
        strings(
            db,
            "select 'order ' || o.out_trade_no || ' is for area ' || cast(o.area_id as text) || ' but its meter is in '
                    || cast(m.area_id as text)
             from orders o join meter m on m.id = o.meter_id where o.area_id <> m.area_id",
        )
        .await?,
    );

    // I9: at most one message per notification key (a unique constraint);
    // checked here in case it was ever dropped.
    add(
        "I9",
        strings(
            db,
            "select 'message key ' || dedup_key || ' sent ' || cast(count(*) as text) || ' times' from message
             where dedup_key is not null group by dedup_key having count(*) > 1",
        )
        .await?,
    );

    // I10: a completed order carries a purchase number, and the meter's
    // purchase count as last read has reached it (the meter's evidence).
    add(
        "I10",
        strings(
            db,
            "select 'order ' || o.out_trade_no || ' completed with purchase '
                    || coalesce(cast(o.purchase_seq as text), 'none') || ', meter count '
                    || coalesce(cast(s.purchase_count as text), 'unknown')
             from orders o left join meter_state s on s.meter_id = o.meter_id
             where o.state = 'completed'
               and (o.purchase_seq is null or s.purchase_count is null or o.purchase_seq > s.purchase_count)",
        )
        .await?,
    );

    // I11: a refunded (or refunding) order never held a purchase number that
    // stays assigned: money back means no frame of it can be on the meter.
    add(
        "I11",
        strings(
            db,
            "select 'order ' || out_trade_no || ' (' || state || ') holds purchase ' || cast(purchase_seq as text)
             from orders where state in ('refunding', 'refunded') and purchase_seq is not null",
        )
        .await?,
    );

    // I12: purchases settle in number order: no meter has an undelivered
    // order holding a lower number than one of its completed orders (the
    // meter's count passed it, so its energy is on the meter unrecorded or
    // its number was skipped).
    add(
        "I12",
        strings(
            db,
            "select 'meter ' || cast(u.meter_id as text) || ': order ' || u.out_trade_no || ' (' || u.state
                    || ') holds purchase ' || cast(u.purchase_seq as text) || ' below completed purchase '
                    || cast(max(c.purchase_seq) as text)
             from orders u join orders c on c.meter_id = u.meter_id and c.state = 'completed'
             where u.state in ('charging', 'delayed') and u.purchase_seq is not null
               and c.purchase_seq > u.purchase_seq
             group by u.meter_id, u.out_trade_no, u.state, u.purchase_seq",
        )
        .await?,
    );

    // I13: a meter replacement carries exactly the movements its state
    // implies: nothing when no energy was left; the carried energy from the
    // old meter's `delivered` to the new meter's `in_flight`; and, once the
    // new meter confirmed it, from there to the new meter's `delivered`.
    add("I13", strings(db, REPLACEMENT_LEDGER_MISMATCH).await?);
    // I14: a credited free allowance is owed to its meter exactly once
    // (`subsidy_credited`, `subsidy_issued` → `in_flight:<meter>`) and, once
    // the meter confirmed it, delivered exactly once (`subsidy_delivered`);
    // at most one allowance per room and month.
    add("I14", strings(db, SUBSIDY_LEDGER_MISMATCH).await?);
    add(
        "I14",
        strings(
            db,
            "select 'room ' || cast(room_id as text) || ' has ' || cast(count(*) as text)
                    || ' allowances for ' || month
             from subsidy group by room_id, month having count(*) > 1",
        )
        .await?,
    );
    Ok(v)
}

const REPLACEMENT_LEDGER_MISMATCH: &str = "select 'replacement ' || cast(r.id as text) || ' carries '
        || cast(r.carried_centikwh as text) || ' centikWh ('
        || case when r.delivered_at_ms is null then 'not delivered' else 'delivered' end
        || ') but its ledger has [' || coalesce(k.kinds, '') || ']'
    from meter_replacement r
    left join (
        select replacement_id,
               cast(count(*) as bigint) as n,
               cast(sum(case when kind = 'energy_carried' and unit = 'centikwh' then amount else 0 end) as bigint) as carried,
               cast(sum(case when kind = 'carry_delivered' and unit = 'centikwh' then amount else 0 end) as bigint) as delivered,
               min(case when kind = 'energy_carried' then debit_account end) as carried_from,
               min(case when kind = 'energy_carried' then credit_account end) as carried_to,
               min(case when kind = 'carry_delivered' then debit_account end) as delivered_from,
               min(case when kind = 'carry_delivered' then credit_account end) as delivered_to,
               min(kind) || '..' || max(kind) as kinds
        from ledger_transfer where replacement_id is not null group by replacement_id
    ) k on k.replacement_id = r.id
    where case
        when r.carried_centikwh = 0 then coalesce(k.n, 0) <> 0
        when coalesce(k.n, 0) <> (case when r.delivered_at_ms is null then 1 else 2 end) then 1 = 1
        when k.carried <> r.carried_centikwh
             or k.carried_from <> 'delivered:' || cast(r.old_meter_id as text)
             or k.carried_to <> 'in_flight:' || cast(r.new_meter_id as text) then 1 = 1
        when r.delivered_at_ms is null then 1 = 0
        else k.delivered <> r.carried_centikwh
             or k.delivered_from <> 'in_flight:' || cast(r.new_meter_id as text)
             or k.delivered_to <> 'delivered:' || cast(r.new_meter_id as text)
    end";

const SUBSIDY_LEDGER_MISMATCH: &str = "select 'subsidy ' || cast(s.id as text) || ' of ' || s.month || ' ('
        || cast(s.centikwh as text) || ' centikWh, '
        || case when s.delivered_at_ms is null then 'not delivered' else 'delivered' end
        || ') but its ledger has [' || coalesce(k.kinds, '') || ']'
    from subsidy s
    left join (
        select subsidy_id,
               cast(count(*) as bigint) as n,
               cast(sum(case when kind = 'subsidy_credited' and unit = 'centikwh' then amount else 0 end) as bigint) as credited,
               cast(sum(case when kind = 'subsidy_delivered' and unit = 'centikwh' then amount else 0 end) as bigint) as delivered,
               min(case when kind = 'subsidy_credited' then debit_account end) as credited_from,
               min(case when kind = 'subsidy_credited' then credit_account end) as credited_to,
               min(case when kind = 'subsidy_delivered' then debit_account end) as delivered_from,
               min(case when kind = 'subsidy_delivered' then credit_account end) as delivered_to,
               min(kind) || '..' || max(kind) as kinds
        from ledger_transfer where subsidy_id is not null group by subsidy_id
    ) k on k.subsidy_id = s.id
    where case
        when coalesce(k.n, 0) <> (case when s.delivered_at_ms is null then 1 else 2 end) then 1 = 1
        when k.credited <> s.centikwh
             or k.credited_from <> 'subsidy_issued'
             or k.credited_to <> 'in_flight:' || cast(s.meter_id as text) then 1 = 1
        when s.delivered_at_ms is null then 1 = 0
        else k.delivered <> s.centikwh
             or k.delivered_from <> 'in_flight:' || cast(s.meter_id as text)
             or k.delivered_to <> 'delivered:' || cast(s.meter_id as text)
    end";

/// Orders whose ledger rows do not match their state: the set of transfer
/// kinds (and their amounts) an order has is a function of its state.
const ORDER_LEDGER_MISMATCH: &str = "select 'order ' || o.out_trade_no || ' (' || o.state || ') has ledger kinds ['
        || coalesce(k.kinds, '') || ']'
    from orders o
    left join (
        select order_id,
               cast(count(*) as bigint) as n,
               cast(sum(case when kind = 'payment_received' then amount else 0 end) as bigint) as paid_fen,
               cast(sum(case when kind = 'energy_issued' then amount else 0 end) as bigint) as issued,
               cast(sum(case when kind = 'energy_delivered' then amount else 0 end) as bigint) as delivered,
               cast(sum(case when kind = 'revenue_recognised' then amount else 0 end) as bigint) as revenue,
               cast(sum(case when kind = 'energy_voided' then amount else 0 end) as bigint) as voided,
               cast(sum(case when kind = 'refund' then amount else 0 end) as bigint) as refunded,
               min(kind) || '..' || max(kind) as kinds
        from ledger_transfer group by order_id
    ) k on k.order_id = o.id
    where case o.state
        when 'unpaid' then coalesce(k.n, 0) <> 0
        when 'closed' then coalesce(k.n, 0) <> 0
        when 'completed' then coalesce(k.n, 0) <> 4 or k.paid_fen <> o.amount_fen or k.issued <> o.kwh * 100
                              or k.delivered <> o.kwh * 100 or k.revenue <> o.amount_fen
        when 'refunded' then coalesce(k.n, 0) <> 4 or k.paid_fen <> o.amount_fen or k.issued <> o.kwh * 100
                             or k.voided <> o.kwh * 100 or k.refunded <> o.amount_fen
        else coalesce(k.n, 0) <> 2 or k.paid_fen <> o.amount_fen or k.issued <> o.kwh * 100
    end";

async fn strings(db: &Db, sql: &'static str) -> Result<Vec<String>> {
    Ok(on_db!(db, |p| sqlx::query_scalar(sql).fetch_all(p).await?))
}
