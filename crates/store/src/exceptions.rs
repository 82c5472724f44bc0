//! The exceptions queue (issue 13 item 5): every order that needs a
//! person, with the reason it was flagged, and the three things staff do
//! about it — deliver again, refund, mark resolved with a note — each a
//! guarded change with its audit entry in the same transaction.
//!
//! A flag (`order_flag`, migration 0010) is raised in the transaction that
//! discovers the reason: the head-end's refusal or alarm
//! (`meters::flag_delivery` / `refuse_delivery`), the overdue worker
//! (`orders::mark_overdue`), a refund WeChat closed (`orders::finish_refund`),
//! a refund WeChat reports abnormal and a trade-bill difference (the
//! service's workers, [`raise`]). So a flag is in the queue the moment its
//! cause commits; the page reads rows, nothing polls. At most one flag per
//! (order, kind) is open at once (a partial unique index), and an order's
//! flags close when it is delivered, when staff refund or re-deliver it,
//! or with a note.

use crate::orders::{self, Order};
use crate::story::{Place, Reach, reach_filter};
use crate::{Db, Error, Result, Tx, audit, on_db, on_tx};
use domain::OrderId;
use domain::order::{Channel, OrderState};
use serde::Serialize;

/// Not delivered within the delivery window.
pub const DELAYED: &str = "delayed";
/// The meter refused the recharge (hoarding limit); its number was given back.
pub const RECHARGE_REFUSED: &str = "recharge_refused";
/// The meter's purchase count is neither the number nor one below it.
pub const SEQ_GAP: &str = "seq_gap";
/// WeChat closed a refund without paying it.
pub const REFUND_FAILED: &str = "refund_failed";
/// WeChat reports a refund abnormal (the payer's card is closed…).
pub const REFUND_ABNORMAL: &str = "refund_abnormal";
/// The trade bill disagrees with the order.
pub const RECONCILIATION: &str = "reconciliation";

/// Most orders the queue shows.
pub const QUEUE_ROWS_MAX: i64 = 500;
/// Longest note of a resolution, in characters.
pub const NOTE_CHARS_MAX: usize = audit::NOTE_CHARS_MAX;

/// One reason an order was flagged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Flag {
    /// Row id.
    pub id: i64,
    /// The order.
    pub order_id: i64,
    /// Why: [`DELAYED`], [`RECHARGE_REFUSED`], … or another head-end alarm kind.
    pub kind: String,
    /// The recorded detail.
    pub detail: String,
    /// Raised.
    pub raised_at_ms: i64,
    /// Resolved (open while `None`).
    pub resolved_at_ms: Option<i64>,
    /// `redelivered`, `refunded`, `noted` or `delivered`.
    pub resolution: Option<String>,
    /// Who resolved it.
    pub resolved_by: Option<String>,
    /// The resolving note.
    pub note: Option<String>,
}

/// Raises a flag in `tx` unless the same (order, kind) is open already.
/// Returns whether a flag was raised.
pub(crate) async fn raise_in(
    tx: &mut Tx,
    order_id: OrderId,
    kind: &str,
    detail: &str,
    now_ms: i64,
) -> Result<bool> {
    let n = on_tx!(tx, |c| sqlx::query(
        "insert into order_flag (order_id, kind, detail, raised_at_ms) values ($1, $2, $3, $4)
         on conflict (order_id, kind) where resolved_at_ms is null do nothing"
    )
    .bind(order_id.get())
    .bind(kind)
    .bind(detail)
    .bind(now_ms)
    .execute(c)
    .await?
    .rows_affected());
    Ok(n == 1)
}

/// [`raise_in`] in its own transaction (the service's workers: an abnormal
/// refund, a trade-bill difference).
pub async fn raise(
    db: &Db,
    order_id: OrderId,
    kind: &str,
    detail: &str,
    now_ms: i64,
) -> Result<bool> {
    let mut tx = db.begin().await?;
    let raised = raise_in(&mut tx, order_id, kind, detail, now_ms).await?;
    tx.commit().await?;
    Ok(raised)
}

/// Resolves every open flag of an order; returns how many.
pub(crate) async fn resolve_all_in(
    tx: &mut Tx,
    order_id: OrderId,
    resolution: &str,
    by: &str,
    note: Option<&str>,
    now_ms: i64,
) -> Result<u64> {
    Ok(on_tx!(tx, |c| sqlx::query(
        "update order_flag set resolved_at_ms = $2, resolution = $3, resolved_by = $4, note = $5
         where order_id = $1 and resolved_at_ms is null"
    )
    .bind(order_id.get())
    .bind(now_ms)
    .bind(resolution)
    .bind(by)
    .bind(note)
    .execute(c)
    .await?
    .rows_affected()))
}

/// Every flag of an order, open and resolved, oldest first.
pub async fn flags_of(db: &Db, order_id: OrderId) -> Result<Vec<Flag>> {
    Ok(on_db!(db, |p| {
        sqlx::query_as(
        "select id, order_id, kind, detail, raised_at_ms, resolved_at_ms, resolution, resolved_by, note
         from order_flag where order_id = $1 order by id"
    )
    .bind(order_id.get())
    .fetch_all(p)
    .await?
    }))
}

async fn open_flags_in(tx: &mut Tx, order_id: OrderId) -> Result<Vec<Flag>> {
    Ok(on_tx!(tx, |c| {
        sqlx::query_as(
        "select id, order_id, kind, detail, raised_at_ms, resolved_at_ms, resolution, resolved_by, note
         from order_flag where order_id = $1 and resolved_at_ms is null order by id"
    )
    .bind(order_id.get())
    .fetch_all(c)
    .await?
    }))
}

/// One order of the queue.
#[derive(Debug, Clone)]
pub struct Exception {
    /// The order as found, with its place and buyer.
    pub hit: crate::story::Hit,
    /// Its open flags, oldest first.
    pub flags: Vec<Flag>,
    /// Its delivery job's state (`queued`, `done`, `dead`).
    pub job_state: Option<String>,
    /// The meter's purchase count as last read.
    pub meter_count: Option<i64>,
}

impl Exception {
    /// Why a refund would be refused now, if it would (the console shows
    /// the reason instead of the button): the rule of docs/ARCHITECTURE.md,
    /// "What staff do with a flagged order".
    pub fn refund_refused(&self) -> Option<Refusal> {
        refund_precondition(&self.hit.order).err()
    }

    /// Whether a re-delivery can be asked (the job was stopped for staff).
    pub fn can_redeliver(&self) -> bool {
        self.hit.order.state == OrderState::Delayed && self.job_state.as_deref() == Some("dead")
    }
}

/// The queue within `reach`: orders with an open flag, the longest waiting
/// first, at most `limit` (capped at [`QUEUE_ROWS_MAX`]).
pub async fn open(db: &Db, reach: &Reach, limit: i64) -> Result<Vec<Exception>> {
    let limit = limit.clamp(1, QUEUE_ROWS_MAX);
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        hit: crate::story::Hit,
        job_state: Option<String>,
        meter_count: Option<i64>,
    }
    let sql = format!(
        "select o.id, o.out_trade_no, o.meter_id, o.student_id, o.area_id, o.kwh,
                o.unit_price_centifen_per_kwh, o.amount_fen, o.channel, o.state, o.buyer_bound, o.operator,
                o.prepay_id, o.transaction_id, o.purchase_seq, o.created_at_ms, o.expires_at_ms, o.paid_at_ms,
                o.completed_at_ms, o.delayed_at_ms, o.closed_at_ms, o.refund_no, o.refunded_at_ms,
                m.address, r.building_id, b.name_zh as building_zh, b.name_en as building_en,
                r.number as room, s.name as student_name, j.state as job_state,
                ms.purchase_count as meter_count
         from (select order_id, min(raised_at_ms) as first_raised_at_ms from order_flag
               where resolved_at_ms is null group by order_id) f
              join orders o on o.id = f.order_id join meter m on m.id = o.meter_id
              join room r on r.id = m.room_id join building b on b.id = r.building_id
              left join student s on s.id = o.student_id
              left join job j on j.dedup_key = 'deliver:' || cast(o.id as text)
              left join meter_state ms on ms.meter_id = m.id
         where {}
         order by f.first_raised_at_ms, o.id limit $4",
        reach_filter!()
    );
    let rows: Vec<Row> = on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
        .bind(reach.operator_id)
        .bind(reach.all_areas)
        .bind(reach.buildings_only)
        .bind(limit)
        .fetch_all(p)
        .await?);
    let flags: Vec<Flag> = on_db!(db, |p| {
        sqlx::query_as(
        "select id, order_id, kind, detail, raised_at_ms, resolved_at_ms, resolution, resolved_by, note
         from order_flag where resolved_at_ms is null order by id"
    )
    .fetch_all(p)
    .await?
    });
    Ok(rows
        .into_iter()
        .map(|r| {
            let id = r.hit.order.id.get();
            Exception {
                flags: flags.iter().filter(|f| f.order_id == id).cloned().collect(),
                hit: r.hit,
                job_state: r.job_state,
                meter_count: r.meter_count,
            }
        })
        .collect())
}

/// How many orders within `reach` need a person (the dashboard's figure).
pub async fn exceptions_count(db: &Db, reach: &Reach) -> Result<i64> {
    let sql = format!(
        "select count(*) from orders o join meter m on m.id = o.meter_id join room r on r.id = m.room_id
         where {} and exists (select 1 from order_flag f where f.order_id = o.id and f.resolved_at_ms is null)",
        reach_filter!()
    );
    Ok(on_db!(db, |p| sqlx::query_scalar(sqlx::AssertSqlSafe(
        sql.clone()
    ))
    .bind(reach.operator_id)
    .bind(reach.all_areas)
    .bind(reach.buildings_only)
    .fetch_one(p)
    .await?))
}

/// The paid order waiting longest for its energy (charging or delayed),
/// and how many there are: the dashboard's "paid but not delivered".
pub async fn oldest_paid_undelivered(db: &Db) -> Result<(i64, Option<Order>)> {
    let n: i64 = on_db!(db, |p| sqlx::query_scalar(
        "select count(*) from orders where state in ('charging', 'delayed')"
    )
    .fetch_one(p)
    .await?);
    let oldest: Option<Order> = on_db!(db, |p| {
        sqlx::query_as(
        "select id, out_trade_no, meter_id, student_id, area_id, kwh, unit_price_centifen_per_kwh,
                amount_fen, channel, state, buyer_bound, operator, prepay_id, transaction_id, purchase_seq,
                created_at_ms, expires_at_ms, paid_at_ms, completed_at_ms, delayed_at_ms, closed_at_ms,
                refund_no, refunded_at_ms
         from orders where state in ('charging', 'delayed') order by paid_at_ms, id limit 1"
    )
    .fetch_optional(p)
    .await?
    });
    Ok((n, oldest))
}

/// Why a staff action on a flagged order was refused; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No such order.
    #[error("no such order")]
    NotFound,
    /// Only a delayed order can be refunded or delivered again.
    #[error("the order is {0}; only a delayed order can be refunded or delivered again")]
    NotDelayed(&'static str),
    /// The order holds purchase number `seq`: the energy may be on the
    /// meter (a lost reply, a purchase-count gap), so it is not refunded.
    #[error(
        "purchase {0} may already be on the meter; deliver again (the head-end reads the meter first) \
         and refund only once its count shows the purchase was not applied"
    )]
    OnMeter(i64),
    /// The head-end holds the delivery right now (a frame may be on the wire).
    #[error("the meter delivery is in progress; try again in a minute")]
    InProgress,
    /// The delivery was not stopped for staff: the head-end keeps retrying.
    #[error("the head-end is still delivering it by itself (the meter may be offline)")]
    StillDelivering,
    /// Nothing is open for this order (someone resolved it first).
    #[error("nothing is open for this order; it was resolved already")]
    AlreadyResolved,
    /// A resolution needs a note.
    #[error("write a note saying how it was resolved")]
    NoteMissing,
    /// The note is too long.
    #[error("the note is too long: at most {NOTE_CHARS_MAX} characters")]
    NoteTooLong,
}

/// A staff action's failure.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// Refused, with the reason; nothing changed.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] Error),
}

/// The refund rule (docs/ARCHITECTURE.md): a delayed order whose purchase
/// number is not held — never sent, or given back after the meter refused
/// it with a count below it — has no energy on the meter.
fn refund_precondition(o: &Order) -> Result<(), Refusal> {
    if o.state != OrderState::Delayed {
        return Err(Refusal::NotDelayed(o.state.as_str()));
    }
    if let Some(seq) = o.purchase_seq {
        return Err(Refusal::OnMeter(seq));
    }
    Ok(())
}

fn snapshot(o: &Order) -> serde_json::Value {
    serde_json::json!({
        "state": o.state.as_str(),
        "purchase_seq": o.purchase_seq,
        "refund_no": o.refund_no,
        "amount_fen": o.amount_fen.get(),
        "kwh": o.kwh.get(),
        "channel": o.channel.as_str(),
    })
}

fn kinds(flags: &[Flag]) -> Vec<&str> {
    flags.iter().map(|f| f.kind.as_str()).collect()
}

/// Writes `action`'s audit row about `order` (before and after as given)
/// and commits `tx`.
async fn commit_audited(
    tx: Tx,
    actor: &audit::Actor,
    action: &str,
    order: &Order,
    before: serde_json::Value,
    after: serde_json::Value,
    now_ms: i64,
) -> Result<()> {
    let entry = audit::Entry {
        actor,
        action,
        subject: &crate::story::audit_subject(order),
        before: Some(before),
        after: Some(after),
    };
    audit::append_and_commit(tx, &entry, now_ms).await
}

/// Begins a staff action on order `order_id`: the transaction, the order
/// ([`Refusal::NotFound`] if none) and its open flags.
async fn begin_on(db: &Db, order_id: OrderId) -> Result<(Tx, Order, Vec<Flag>), ActionError> {
    let mut tx = db.begin().await?;
    let order = order_in(&mut tx, order_id)
        .await?
        .ok_or(Refusal::NotFound)?;
    let flags = open_flags_in(&mut tx, order_id).await?;
    Ok((tx, order, flags))
}

async fn order_in(tx: &mut Tx, order_id: OrderId) -> Result<Option<Order>> {
    let sql = "select id, out_trade_no, meter_id, student_id, area_id, kwh, unit_price_centifen_per_kwh,
                amount_fen, channel, state, buyer_bound, operator, prepay_id, transaction_id, purchase_seq,
                created_at_ms, expires_at_ms, paid_at_ms, completed_at_ms, delayed_at_ms, closed_at_ms,
                refund_no, refunded_at_ms from orders where id = $1";
    Ok(on_tx!(tx, |c| sqlx::query_as(sql)
        .bind(order_id.get())
        .fetch_optional(c)
        .await?))
}

/// Staff refund of a flagged order, for the whole amount (no partial
/// refunds): allowed only by the refund rule ([`Refusal::OnMeter`],
/// [`Refusal::NotDelayed`] otherwise). In one transaction: the order moves
/// to *refunding* with its refund number (`orders::request_refund`, whose
/// guarded job cancellation makes two refunds at once one), the refunding
/// operator is recorded (`staff_refund`: a counter order is cash they pay
/// back at the counter), the order's flags close and the audit entry is
/// written. The refund worker then pays it back (WeChat) or records the
/// cash (counter) and writes the ledger.
pub async fn refund(
    db: &Db,
    order_id: OrderId,
    actor: &audit::Actor,
    now_ms: i64,
) -> Result<Order, ActionError> {
    let (mut tx, before, flags) = begin_on(db, order_id).await?;
    refund_precondition(&before)?;
    let after = match orders::request_refund_in(&mut tx, order_id, now_ms).await {
        Ok(o) => o,
        Err(Error::Conflict(_) | Error::IllegalTransition(_)) => {
            drop(tx);
            // Say why as it is now: a refund that won the race has committed.
            let now = orders::by_id(db, order_id)
                .await?
                .ok_or(Refusal::NotFound)?;
            refund_precondition(&now)?;
            return Err(Refusal::InProgress.into());
        }
        Err(e) => return Err(e.into()),
    };
    let refund_no = after
        .refund_no
        .clone()
        .ok_or_else(|| Error::Corrupt(format!("order {order_id} refunding without a number")))?;
    // Cash paid back at the counter leaves the refunding operator's till:
    // their open shift, locked by this guarded no-op update so a close of
    // that shift (`shifts::close`, same lock) counts the refund or comes
    // strictly before it.
    let till: Option<i64> = match (after.channel, actor.operator_id) {
        (Channel::Counter, Some(op)) => on_tx!(&mut tx, |c| sqlx::query_scalar(
            "update shift set sales_count = sales_count
             where operator_id = $1 and closed_at_ms is null returning id"
        )
        .bind(op)
        .fetch_optional(c)
        .await
        .map_err(Error::from)?),
        _ => None,
    };
    on_tx!(&mut tx, |c| {
        sqlx::query(
        "insert into staff_refund (refund_no, order_id, channel, amount_fen, operator_id, operator_name,
                                   client_ip, requested_at_ms, shift_id)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    )
    .bind(&refund_no)
    .bind(order_id.get())
    .bind(after.channel.as_str())
    .bind(after.amount_fen.get())
    .bind(actor.operator_id)
    .bind(&actor.name)
    .bind(&actor.client_ip)
    .bind(now_ms)
    .bind(till)
    .execute(c)
    .await
    .map_err(Error::from)?
    .rows_affected()
    });
    resolve_all_in(&mut tx, order_id, "refunded", &actor.name, None, now_ms).await?;
    let how = match after.channel {
        Channel::Wechat => "wechat",
        Channel::Counter => "cash_at_counter",
    };
    commit_audited(
        tx,
        actor,
        "order_refund_requested",
        &after,
        serde_json::json!({ "order": snapshot(&before), "flags": kinds(&flags) }),
        serde_json::json!({
            "order": snapshot(&after),
            "refund": { "refund_no": refund_no, "amount_fen": after.amount_fen.get(), "paid_back": how, "shift": till },
        }),
        now_ms,
    )
    .await?;
    Ok(after)
}

/// Staff "deliver again" ([`orders::redeliver`]: the job runs now and the
/// head-end reads the meter's count first). Refused unless the order is
/// delayed with its delivery stopped for staff. Closes the order's flags
/// (a new refusal raises a new one) and writes the audit entry, in one
/// transaction.
pub async fn redeliver(
    db: &Db,
    order_id: OrderId,
    actor: &audit::Actor,
    now_ms: i64,
) -> Result<Order, ActionError> {
    let (mut tx, before, flags) = begin_on(db, order_id).await?;
    if before.state != OrderState::Delayed {
        return Err(Refusal::NotDelayed(before.state.as_str()).into());
    }
    if !orders::redeliver_in(&mut tx, order_id, now_ms).await? {
        return Err(Refusal::StillDelivering.into());
    }
    resolve_all_in(&mut tx, order_id, "redelivered", &actor.name, None, now_ms).await?;
    commit_audited(
        tx,
        actor,
        "order_redelivered",
        &before,
        serde_json::json!({ "order": snapshot(&before), "flags": kinds(&flags), "job": "dead" }),
        serde_json::json!({ "order": snapshot(&before), "flags": [], "job": "queued" }),
        now_ms,
    )
    .await?;
    Ok(before)
}

/// Marks an order's open flags resolved with the operator's note (1–500
/// characters). Guarded (`resolved_at_ms is null`): of two at once, one
/// resolves and the other is [`Refusal::AlreadyResolved`]. Returns how many
/// flags it closed.
pub async fn resolve(
    db: &Db,
    order_id: OrderId,
    actor: &audit::Actor,
    note: &str,
    now_ms: i64,
) -> Result<u64, ActionError> {
    let note = audit::checked_note(note, Refusal::NoteMissing, Refusal::NoteTooLong)?;
    let (mut tx, order, flags) = begin_on(db, order_id).await?;
    let n = resolve_all_in(&mut tx, order_id, "noted", &actor.name, Some(note), now_ms).await?;
    if n == 0 {
        return Err(Refusal::AlreadyResolved.into());
    }
    commit_audited(
        tx,
        actor,
        "order_flags_resolved",
        &order,
        serde_json::json!({ "order": snapshot(&order), "flags": kinds(&flags) }),
        serde_json::json!({ "order": snapshot(&order), "flags": [], "note": note }),
        now_ms,
    )
    .await?;
    Ok(n)
}

/// One refund staff asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct StaffRefund {
    /// The refund number.
    pub refund_no: String,
    /// The order.
    pub order_id: i64,
    /// `wechat` or `counter` (cash paid back at the counter).
    pub channel: String,
    /// The whole amount.
    pub amount_fen: i64,
    /// The refunding operator.
    pub operator_name: String,
    /// Asked.
    pub requested_at_ms: i64,
}

/// Refunds `operator` asked for in `[from_ms, until_ms)`, oldest first —
/// for a counter shift's cash-up, the counter refunds are cash paid out.
pub async fn refunds_by(
    db: &Db,
    operator: &str,
    from_ms: i64,
    until_ms: i64,
) -> Result<Vec<StaffRefund>> {
    Ok(on_db!(db, |p| {
        sqlx::query_as(
        "select refund_no, order_id, channel, amount_fen, operator_name, requested_at_ms
         from staff_refund where operator_name = $1 and requested_at_ms >= $2 and requested_at_ms < $3
         order by requested_at_ms, refund_no"
    )
    .bind(operator)
    .bind(from_ms)
    .bind(until_ms)
    .fetch_all(p)
    .await?
    }))
}

/// The place of a flagged order (re-exported for the console's scope
/// check before an action).
pub async fn place_of(db: &Db, order_id: OrderId) -> Result<Option<(i64, Place)>> {
    crate::story::place_of(db, order_id).await
}
