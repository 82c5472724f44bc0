//! Orders for staff (issue 13 item 4): the console's search, limited to the
//! operator's reach, and an order's whole story in time order — its state
//! changes, payment notifications, the delivery job, the meter's evidence,
//! ledger rows, the flags of the exceptions queue and the audit entries
//! that name it.

use crate::orders::Order;
use crate::{Db, Result, on_db};
use domain::OrderId;
use domain::order::OrderState;
use serde::Serialize;

/// Most orders one search returns.
pub const SEARCH_ROWS_MAX: i64 = 500;
/// Most rows of each kind a story reads (an order has a handful).
const STORY_ROWS_MAX: i64 = 500;

/// Where an operator's lists reach, as the store filters them: the same
/// rule as `domain::staff::can` (areas in the scope; a building manager
/// only their buildings), read from the operator's own scope rows so no
/// list of ids is passed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reach {
    /// The operator's row id (its `operator_area` / `operator_building`).
    pub operator_id: i64,
    /// Every area.
    pub all_areas: bool,
    /// Limited to the operator's buildings (a building manager).
    pub buildings_only: bool,
}

impl Reach {
    /// The reach of `op`.
    pub fn of(op: &crate::operators::Operator) -> Reach {
        Reach {
            operator_id: op.id,
            all_areas: op.all_areas,
            buildings_only: op.role == domain::staff::Role::BuildingManager,
        }
    }
}

/// The reach filter over `o` (orders) and `r` (room); binds `$1..$3` as
/// operator id, all areas, buildings only.
macro_rules! reach_filter {
    () => {
        "($2 or o.area_id in (select area_id from operator_area where operator_id = $1))
         and (not $3 or r.building_id in (select building_id from operator_building where operator_id = $1))"
    };
}
pub(crate) use reach_filter;

/// Where an order's meter is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Place {
    /// The meter's number.
    pub address: String,
    /// The building's row id.
    pub building_id: i64,
    /// The building, in Chinese.
    pub building_zh: String,
    /// The building, in English.
    pub building_en: String,
    /// The room number.
    pub room: String,
}

/// One order found, with its place and buyer.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Hit {
    /// The order.
    #[sqlx(flatten)]
    pub order: Order,
    /// Its meter's place.
    #[sqlx(flatten)]
    pub place: Place,
    /// The buyer's name (empty when unknown; none at the counter).
    pub student_name: Option<String>,
}

/// What to look for; empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct OrderSearch {
    /// Our order number (`out_trade_no`), exactly.
    pub out_trade_no: Option<String>,
    /// WeChat's transaction id, exactly.
    pub transaction_id: Option<String>,
    /// The meter's 12-digit number, exactly.
    pub meter: Option<String>,
    /// The room number, exactly (every building in reach).
    pub room: Option<String>,
    /// The buyer: name, phone or openid, exactly.
    pub student: Option<String>,
    /// Created at or after (unix ms).
    pub from_ms: Option<i64>,
    /// Created before (unix ms).
    pub until_ms: Option<i64>,
    /// In this state.
    pub state: Option<OrderState>,
    /// Rows to skip (paging).
    pub offset: i64,
    /// Most rows (capped at [`SEARCH_ROWS_MAX`]).
    pub limit: i64,
}

const HIT_SELECT: &str = "select o.id, o.out_trade_no, o.meter_id, o.student_id, o.area_id, o.kwh,
        o.unit_price_centifen_per_kwh, o.amount_fen, o.channel, o.state, o.buyer_bound, o.operator,
        o.prepay_id, o.transaction_id, o.purchase_seq, o.created_at_ms, o.expires_at_ms, o.paid_at_ms,
        o.completed_at_ms, o.delayed_at_ms, o.closed_at_ms, o.refund_no, o.refunded_at_ms,
        m.address, r.building_id, b.name_zh as building_zh, b.name_en as building_en, r.number as room,
        s.name as student_name
 from orders o join meter m on m.id = o.meter_id join room r on r.id = m.room_id
      join building b on b.id = r.building_id left join student s on s.id = o.student_id";

/// Orders matching `q` within `reach`, newest first.
pub async fn search(db: &Db, q: &OrderSearch, reach: &Reach) -> Result<Vec<Hit>> {
    let sql = format!(
        "{HIT_SELECT}
         where {}
           and ($4 is null or o.out_trade_no = $4)
           and ($5 is null or o.transaction_id = $5)
           and ($6 is null or m.address = $6)
           and ($7 is null or r.number = $7)
           and ($8 is null or s.name = $8 or s.phone = $8 or s.openid = $8)
           and ($9 is null or o.created_at_ms >= $9)
           and ($10 is null or o.created_at_ms < $10)
           and ($11 is null or o.state = $11)
         order by o.created_at_ms desc, o.id desc
         limit $12 offset $13",
        reach_filter!()
    );
    let limit = q.limit.clamp(1, SEARCH_ROWS_MAX);
    Ok(on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(
        sql.clone()
    ))
    .bind(reach.operator_id)
    .bind(reach.all_areas)
    .bind(reach.buildings_only)
    .bind(q.out_trade_no.as_deref())
    .bind(q.transaction_id.as_deref())
    .bind(q.meter.as_deref())
    .bind(q.room.as_deref())
    .bind(q.student.as_deref())
    .bind(q.from_ms)
    .bind(q.until_ms)
    .bind(q.state.map(OrderState::as_str))
    .bind(limit)
    .bind(q.offset.max(0))
    .fetch_all(p)
    .await?))
}

/// One order with its place, if it is within `reach` (`None` otherwise,
/// and when there is no such order).
pub async fn hit(db: &Db, order_id: OrderId, reach: &Reach) -> Result<Option<Hit>> {
    let sql = format!("{HIT_SELECT} where {} and o.id = $4", reach_filter!());
    Ok(on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(
        sql.clone()
    ))
    .bind(reach.operator_id)
    .bind(reach.all_areas)
    .bind(reach.buildings_only)
    .bind(order_id.get())
    .fetch_optional(p)
    .await?))
}

/// The place of an order's meter and its area (to ask `can` before an
/// action), whoever asks.
pub async fn place_of(db: &Db, order_id: OrderId) -> Result<Option<(i64, Place)>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        area_id: i64,
        #[sqlx(flatten)]
        place: Place,
    }
    let r: Option<Row> = on_db!(db, |p| {
        sqlx::query_as(
        "select o.area_id, m.address, r.building_id, b.name_zh as building_zh, b.name_en as building_en,
                r.number as room
         from orders o join meter m on m.id = o.meter_id join room r on r.id = m.room_id
              join building b on b.id = r.building_id where o.id = $1"
    )
    .bind(order_id.get())
    .fetch_optional(p)
    .await?
    });
    Ok(r.map(|r| (r.area_id, r.place)))
}

/// Where a story event comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Source {
    /// The order's own state changes.
    Order,
    /// A payment notification we received.
    Payment,
    /// The delivery job.
    Delivery,
    /// The meter's record (refusals, gaps, the delivery itself).
    Meter,
    /// A ledger transfer.
    Ledger,
    /// The exceptions queue (raised, resolved).
    Flag,
    /// A staff action in the audit log.
    Audit,
    /// A message to the buyer.
    Message,
}

impl Source {
    /// A stable name (the console's catalog keys end in it).
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Order => "order",
            Source::Payment => "payment",
            Source::Delivery => "delivery",
            Source::Meter => "meter",
            Source::Ledger => "ledger",
            Source::Flag => "flag",
            Source::Audit => "audit",
            Source::Message => "message",
        }
    }
}

/// One thing that happened to an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// When (unix ms).
    pub at_ms: i64,
    /// Where the record is.
    pub source: Source,
    /// A short stable name (`paid`, `credited`, `recharge_refused`,
    /// `payment_received`, `order_refund_requested`…).
    pub what: String,
    /// Details as recorded (not translated: the stored text).
    pub detail: String,
}

/// A ledger row of the order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct LedgerRow {
    /// Transfer kind.
    pub kind: String,
    /// Debit account.
    pub debit_account: String,
    /// Credit account.
    pub credit_account: String,
    /// Amount in `unit`.
    pub amount: i64,
    /// `fen` or `centikwh`.
    pub unit: String,
    /// Written.
    pub created_at_ms: i64,
}

/// The order's delivery job as it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct DeliveryJob {
    /// `queued`, `done` or `dead`.
    pub state: String,
    /// Failed attempts so far.
    pub attempts: i64,
    /// Next run.
    pub run_at_ms: i64,
    /// The worker holding it, while one does.
    pub locked_by: Option<String>,
    /// Its lease.
    pub locked_until_ms: Option<i64>,
    /// The last failure (or why it was stopped).
    pub last_error: Option<String>,
    /// Created.
    pub created_at_ms: i64,
    /// Last changed.
    pub updated_at_ms: i64,
}

/// What the meter last told us (the evidence staff decide on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Evidence {
    /// The meter's purchase count as last read.
    pub purchase_count: Option<i64>,
    /// The last purchase number we assigned on this meter.
    pub purchase_seq_last: i64,
    /// Remaining energy as last read, 0.01 kWh.
    pub remaining_centikwh: Option<i64>,
    /// When the remaining energy was read.
    pub remaining_at_ms: Option<i64>,
    /// Online as last polled.
    pub online: Option<bool>,
    /// Last answer.
    pub last_seen_at_ms: Option<i64>,
}

/// An order's whole story.
#[derive(Debug, Clone)]
pub struct Story {
    /// The order with its place and buyer.
    pub hit: Hit,
    /// Everything that happened, oldest first.
    pub events: Vec<Event>,
    /// Its ledger rows, oldest first.
    pub ledger: Vec<LedgerRow>,
    /// Its delivery job.
    pub job: Option<DeliveryJob>,
    /// Its meter's evidence.
    pub evidence: Option<Evidence>,
    /// Its flags in the exceptions queue, open and resolved.
    pub flags: Vec<crate::exceptions::Flag>,
}

/// A payment notification as the story reads it: received, provider,
/// outcome, transaction id, amount.
type NotificationRow = (i64, String, String, Option<String>, Option<i64>);
/// An audit row as the story reads it: at, action, operator, before, after.
type AuditRow = (i64, String, String, Option<String>, Option<String>);

/// The audit subject of staff actions on an order.
pub fn audit_subject(order: &Order) -> String {
    format!("order:{}", order.out_trade_no)
}

/// The story of an order within `reach` (`None` outside it).
pub async fn story(db: &Db, order_id: OrderId, reach: &Reach) -> Result<Option<Story>> {
    let Some(hit) = hit(db, order_id, reach).await? else {
        return Ok(None);
    };
    let o = &hit.order;
    let id = o.id.get();
    let mut events = Vec::new();
    let mut at = |at_ms: Option<i64>, what: &str, detail: String| {
        if let Some(at_ms) = at_ms {
            events.push(Event {
                at_ms,
                source: Source::Order,
                what: what.to_owned(),
                detail,
            });
        }
    };
    at(
        Some(o.created_at_ms),
        "created",
        format!(
            "{} kWh, {} fen, {}{}",
            o.kwh.get(),
            o.amount_fen.get(),
            o.channel.as_str(),
            o.operator
                .as_deref()
                .map(|op| format!(", operator {op}"))
                .unwrap_or_default()
        ),
    );
    at(
        o.paid_at_ms,
        "paid",
        o.transaction_id
            .as_deref()
            .map(|t| format!("transaction {t}"))
            .unwrap_or_default(),
    );
    at(o.delayed_at_ms, "delayed", String::new());
    at(
        o.completed_at_ms,
        "completed",
        o.purchase_seq
            .map(|s| format!("purchase {s}"))
            .unwrap_or_default(),
    );
    at(o.closed_at_ms, "closed", String::new());
    at(
        o.refunded_at_ms,
        "refunded",
        o.refund_no.clone().unwrap_or_default(),
    );
    let notes: Vec<NotificationRow> = on_db!(db, |p| {
        sqlx::query_as(
            "select received_at_ms, provider, outcome, transaction_id, amount_fen
             from payment_notification where out_trade_no = $1 order by id limit $2",
        )
        .bind(&o.out_trade_no)
        .bind(STORY_ROWS_MAX)
        .fetch_all(p)
        .await?
    });
    for (at_ms, provider, outcome, tx, amount) in notes {
        events.push(Event {
            at_ms,
            source: Source::Payment,
            what: outcome,
            detail: format!(
                "{provider}{}{}",
                tx.map(|t| format!(", transaction {t}")).unwrap_or_default(),
                amount.map(|a| format!(", {a} fen")).unwrap_or_default()
            ),
        });
    }
    let job: Option<DeliveryJob> = on_db!(db, |p| {
        sqlx::query_as(
        "select state, attempts, run_at_ms, locked_by, locked_until_ms, last_error, created_at_ms,
                updated_at_ms
         from job where dedup_key = $1"
    )
    .bind(format!("deliver:{id}"))
    .fetch_optional(p)
    .await?
    });
    if let Some(j) = &job {
        events.push(Event {
            at_ms: j.created_at_ms,
            source: Source::Delivery,
            what: "queued".to_owned(),
            detail: String::new(),
        });
        if j.updated_at_ms != j.created_at_ms {
            events.push(Event {
                at_ms: j.updated_at_ms,
                source: Source::Delivery,
                what: j.state.clone(),
                detail: format!(
                    "{} failed attempt(s){}",
                    j.attempts,
                    j.last_error
                        .as_deref()
                        .map(|e| format!("; last: {e}"))
                        .unwrap_or_default()
                ),
            });
        }
    }
    // The head-end writes `order <id>: …` or `order <id>, …` (crate::meters).
    let meter_events: Vec<(i64, String, String)> = on_db!(db, |p| sqlx::query_as(
        "select at_ms, kind, detail from meter_event
         where meter_id = $1 and (detail = $2 or detail like $3 or detail like $4)
         order by id limit $5"
    )
    .bind(o.meter_id.get())
    .bind(format!("order {id}"))
    .bind(format!("order {id}:%"))
    .bind(format!("order {id},%"))
    .bind(STORY_ROWS_MAX)
    .fetch_all(p)
    .await?);
    for (at_ms, kind, detail) in meter_events {
        events.push(Event {
            at_ms,
            source: Source::Meter,
            what: kind,
            detail,
        });
    }
    let ledger: Vec<LedgerRow> = on_db!(db, |p| sqlx::query_as(
        "select kind, debit_account, credit_account, amount, unit, created_at_ms
         from ledger_transfer where order_id = $1 order by id"
    )
    .bind(id)
    .fetch_all(p)
    .await?);
    for l in &ledger {
        events.push(Event {
            at_ms: l.created_at_ms,
            source: Source::Ledger,
            what: l.kind.clone(),
            detail: format!(
                "{} → {}: {} {}",
                l.debit_account, l.credit_account, l.amount, l.unit
            ),
        });
    }
    let flags = crate::exceptions::flags_of(db, o.id).await?;
    for f in &flags {
        events.push(Event {
            at_ms: f.raised_at_ms,
            source: Source::Flag,
            what: f.kind.clone(),
            detail: f.detail.clone(),
        });
        if let Some(r) = f.resolved_at_ms {
            events.push(Event {
                at_ms: r,
                source: Source::Flag,
                what: format!("resolved_{}", f.resolution.as_deref().unwrap_or("")),
                detail: format!(
                    "{}{}",
                    f.resolved_by.as_deref().unwrap_or(""),
                    f.note
                        .as_deref()
                        .map(|n| format!(": {n}"))
                        .unwrap_or_default()
                ),
            });
        }
    }
    let messages: Vec<(i64, String)> = on_db!(db, |p| sqlx::query_as(
        "select created_at_ms, kind from message where dedup_key like $1 order by id limit $2"
    )
    .bind(format!("delivered:{id}:%"))
    .bind(STORY_ROWS_MAX)
    .fetch_all(p)
    .await?);
    for (at_ms, kind) in messages {
        events.push(Event {
            at_ms,
            source: Source::Message,
            what: kind,
            detail: String::new(),
        });
    }
    let audit: Vec<AuditRow> = on_db!(db, |p| {
        sqlx::query_as(
            "select at_ms, action, operator_name, before_json, after_json from audit_log
             where subject = $1 or subject = $2 or subject like $3 order by seq limit $4",
        )
        .bind(audit_subject(o))
        .bind(format!("/staff/orders/{id}"))
        .bind(format!("/staff/%/{id}/%"))
        .bind(STORY_ROWS_MAX)
        .fetch_all(p)
        .await?
    });
    for (at_ms, action, who, before, after) in audit {
        events.push(Event {
            at_ms,
            source: Source::Audit,
            what: action,
            detail: format!(
                "{who}: {} → {}",
                before.unwrap_or_default(),
                after.unwrap_or_default()
            ),
        });
    }
    // Stable: records of the same instant keep the order they were read in
    // (the order's own changes first).
    events.sort_by_key(|e| e.at_ms);
    let evidence: Option<Evidence> = on_db!(db, |p| sqlx::query_as(
        "select s.purchase_count, m.purchase_seq_last, s.remaining_centikwh, s.remaining_at_ms,
                s.online, s.last_seen_at_ms
         from meter m left join meter_state s on s.meter_id = m.id where m.id = $1"
    )
    .bind(o.meter_id.get())
    .fetch_optional(p)
    .await?);
    Ok(Some(Story {
        hit,
        events,
        ledger,
        job,
        evidence,
        flags,
    }))
}
