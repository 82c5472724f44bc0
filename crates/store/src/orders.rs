//! Orders: creation with a frozen price, payment (which writes the ledger and
//! the delivery job in the same transaction), delivery confirmation, expiry,
//! cancellation, delay and refunds.

use crate::row::{BadValue, decode_row, decoded};
use crate::{Db, Error, Result, Tx, jobs, ledger, on_db, on_tx};
use domain::order::{self, Channel, OrderEvent, OrderState};
use domain::{AreaId, CentiKwh, Fen, MeterId, OrderId, StudentId, UnitPrice, WholeKwh};
use serde::Serialize;

/// Queue of meter deliveries (consumed by the head-end).
pub const DELIVER_QUEUE: &str = "deliver";
/// Delivery jobs go before routine work.
pub const DELIVER_PRIORITY: i64 = 100;
/// Attempts before a delivery job is dead-lettered for staff; generous,
/// because a meter may be offline for days and must still get its energy.
pub const DELIVER_ATTEMPTS_MAX: i64 = 1_000_000;

/// An order row, decoded into domain types.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Order {
    /// Row id.
    pub id: OrderId,
    /// Our order number, also WeChat's `out_trade_no`.
    pub out_trade_no: String,
    /// Meter row id.
    pub meter_id: MeterId,
    /// Buyer (null at the counter).
    pub student_id: Option<StudentId>,
    /// Area of the meter.
    pub area_id: AreaId,
    /// Whole kWh bought.
    pub kwh: WholeKwh,
    /// Price frozen at creation.
    pub unit_price_centifen_per_kwh: UnitPrice,
    /// Amount to pay.
    pub amount_fen: Fen,
    /// How the order is paid.
    pub channel: Channel,
    /// Where the order stands.
    pub state: OrderState,
    /// Whether the buyer had the meter bound at creation.
    pub buyer_bound: bool,
    /// Counter operator.
    pub operator: Option<String>,
    /// WeChat prepay id once requested.
    pub prepay_id: Option<String>,
    /// WeChat transaction id once paid.
    pub transaction_id: Option<String>,
    /// The meter purchase sequence number, assigned once before the first frame.
    pub purchase_seq: Option<i64>,
    /// Created.
    pub created_at_ms: i64,
    /// Unpaid orders close at this instant.
    pub expires_at_ms: i64,
    /// Paid.
    pub paid_at_ms: Option<i64>,
    /// Confirmed by the meter.
    pub completed_at_ms: Option<i64>,
    /// Marked delayed.
    pub delayed_at_ms: Option<i64>,
    /// Closed (expired or cancelled).
    pub closed_at_ms: Option<i64>,
    /// Refund number once requested.
    pub refund_no: Option<String>,
    /// Refunded.
    pub refunded_at_ms: Option<i64>,
}

impl Order {
    /// Energy bought in 0.01 kWh.
    pub fn centikwh(&self) -> CentiKwh {
        self.kwh.centikwh()
    }
}

/// The columns of `orders` as stored; decoded into [`Order`] once.
#[derive(sqlx::FromRow)]
struct OrderRow {
    id: i64,
    out_trade_no: String,
    meter_id: i64,
    student_id: Option<i64>,
    area_id: i64,
    kwh: i64,
    unit_price_centifen_per_kwh: i64,
    amount_fen: i64,
    channel: String,
    state: String,
    buyer_bound: bool,
    operator: Option<String>,
    prepay_id: Option<String>,
    transaction_id: Option<String>,
    purchase_seq: Option<i64>,
    created_at_ms: i64,
    expires_at_ms: i64,
    paid_at_ms: Option<i64>,
    completed_at_ms: Option<i64>,
    delayed_at_ms: Option<i64>,
    closed_at_ms: Option<i64>,
    refund_no: Option<String>,
    refunded_at_ms: Option<i64>,
}

impl TryFrom<OrderRow> for Order {
    type Error = BadValue;

    fn try_from(r: OrderRow) -> Result<Self, BadValue> {
        let id = r.id;
        let column = |name: &str| format!("orders.{name} of order {id}");
        Ok(Self {
            id: OrderId::new(r.id),
            out_trade_no: r.out_trade_no,
            meter_id: MeterId::new(r.meter_id),
            student_id: r.student_id.map(StudentId::new),
            area_id: AreaId::new(r.area_id),
            kwh: decoded(&column("kwh"), r.kwh, WholeKwh::from_stored(r.kwh))?,
            unit_price_centifen_per_kwh: decoded(
                &column("unit_price_centifen_per_kwh"),
                r.unit_price_centifen_per_kwh,
                UnitPrice::from_centifen_per_kwh(r.unit_price_centifen_per_kwh),
            )?,
            amount_fen: Fen::new(r.amount_fen),
            channel: decoded(&column("channel"), &r.channel, Channel::parse(&r.channel))?,
            state: decoded(&column("state"), &r.state, OrderState::parse(&r.state))?,
            buyer_bound: r.buyer_bound,
            operator: r.operator,
            prepay_id: r.prepay_id,
            transaction_id: r.transaction_id,
            purchase_seq: r.purchase_seq,
            created_at_ms: r.created_at_ms,
            expires_at_ms: r.expires_at_ms,
            paid_at_ms: r.paid_at_ms,
            completed_at_ms: r.completed_at_ms,
            delayed_at_ms: r.delayed_at_ms,
            closed_at_ms: r.closed_at_ms,
            refund_no: r.refund_no,
            refunded_at_ms: r.refunded_at_ms,
        })
    }
}

decode_row!(Order, OrderRow);

const ORDER_COLUMNS: &str = "id, out_trade_no, meter_id, student_id, area_id, kwh, unit_price_centifen_per_kwh,
    amount_fen, channel, state, buyer_bound, operator, prepay_id, transaction_id, purchase_seq, created_at_ms,
    expires_at_ms, paid_at_ms, completed_at_ms, delayed_at_ms, closed_at_ms, refund_no, refunded_at_ms";

macro_rules! select_orders {
    ($tail:literal) => {
        concat!(
            "select id, out_trade_no, meter_id, student_id, area_id, kwh, unit_price_centifen_per_kwh,
    amount_fen, channel, state, buyer_bound, operator, prepay_id, transaction_id, purchase_seq, created_at_ms,
    expires_at_ms, paid_at_ms, completed_at_ms, delayed_at_ms, closed_at_ms, refund_no, refunded_at_ms from orders ",
            $tail
        )
    };
}

/// Why an order could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// No such meter in that area (the same message either way).
    #[error("no such meter in this area")]
    NoSuchMeter,
    /// The meter was retired (taken out of service; issue 14): it is not
    /// read and would never receive the energy.
    #[error("this meter has been retired and can no longer be recharged")]
    Retired,
    /// Above the area's per-order maximum.
    #[error("at most {max} kWh per order")]
    TooLarge {
        /// The maximum.
        max: i64,
    },
    /// The meter would refuse the energy: balance plus energy on its way plus
    /// this order exceeds its hoarding limit.
    #[error(
        "this purchase would take the meter above its limit of {limit} kWh; buy at most {room} kWh"
    )]
    HoardingLimit {
        /// The meter's limit in kWh.
        limit: CentiKwh,
        /// Whole kWh that still fit.
        room: i64,
    },
    /// The buyer already has this many unpaid orders.
    #[error("you already have {max} unpaid orders; pay or cancel one first")]
    TooManyUnpaid {
        /// The cap.
        max: i64,
    },
    /// The meter already has this many unpaid orders (by anyone).
    #[error("this meter already has {max} unpaid orders; pay or cancel one first")]
    MeterUnpaidLimit {
        /// The cap.
        max: i64,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] Error),
}

/// Unpaid orders one student may hold at once (a real student needs one or
/// two; the cap stops a flood of unpaid orders from starving the workers).
pub const UNPAID_PER_STUDENT_MAX: i64 = 3;
/// Unpaid orders one meter may have at once, from all its buyers.
pub const UNPAID_PER_METER_MAX: i64 = 6;

/// What the buyer asked for.
#[derive(Debug, Clone)]
pub struct NewOrder<'a> {
    /// Area chosen by the buyer.
    pub area_id: i64,
    /// Meter number typed or picked.
    pub meter_address: &'a str,
    /// Buyer, when a student.
    pub student_id: Option<i64>,
    /// Whole kWh.
    pub kwh: WholeKwh,
    /// Payment channel.
    pub channel: Channel,
    /// Counter operator.
    pub operator: Option<&'a str>,
}

fn new_out_trade_no(now_ms: i64) -> String {
    // 'DW' + ms timestamp + 8 random digits: unique, sortable, within WeChat's 6–32 chars.
    format!("DW{now_ms}{:08}", rand::random::<u32>() % 100_000_000)
}

/// Creates an unpaid order, pricing it with the price in force for the meter
/// at `now_ms` (`store::policy`: meter tariff, else the building's or area's
/// schedule, else the area's default) and freezing that price on the order;
/// for the counter channel use [`create_counter_sale`].
pub async fn create(db: &Db, req: &NewOrder<'_>, now_ms: i64) -> Result<Order, CreateError> {
    let mut tx = db.begin().await?;
    let order = create_in(&mut tx, req, now_ms).await?;
    tx.commit().await?;
    Ok(order)
}

/// (meter id, price, area kWh max, hoarding limit, remaining, retired at).
type MeterToOrder = (i64, i64, i64, i64, Option<i64>, Option<i64>);

async fn create_in(tx: &mut Tx, req: &NewOrder<'_>, now_ms: i64) -> Result<Order, CreateError> {
    // The meter row is locked (PostgreSQL; SQLite's `BEGIN IMMEDIATE`
    // serialises writers anyway), so two orders created at the same moment
    // cannot both pass the hoarding and unpaid checks below.
    let sql = match tx.backend() {
        crate::Backend::Sqlite => concat!(
            "select m.id, ",
            crate::price_in_force_sql!("$3"),
            ", a.order_kwh_max, m.hoard_limit_centikwh, s.remaining_centikwh, m.retired_at_ms
             from meter m join area a on a.id = m.area_id join room r on r.id = m.room_id
             left join meter_state s on s.meter_id = m.id
             where m.area_id = $1 and m.address = $2"
        ),
        crate::Backend::Postgres => concat!(
            "select m.id, ",
            crate::price_in_force_sql!("$3"),
            ", a.order_kwh_max, m.hoard_limit_centikwh, s.remaining_centikwh, m.retired_at_ms
             from meter m join area a on a.id = m.area_id join room r on r.id = m.room_id
             left join meter_state s on s.meter_id = m.id
             where m.area_id = $1 and m.address = $2 for update of m"
        ),
    };
    let row: Option<MeterToOrder> = on_tx!(tx, |c| {
        sqlx::query_as(sql)
            .bind(req.area_id)
            .bind(req.meter_address)
            .bind(now_ms)
            .fetch_optional(c)
            .await
            .map_err(Error::from)?
    });
    let Some((meter_id, price, kwh_max, hoard_limit, remaining, retired_at_ms)) = row else {
        return Err(CreateError::NoSuchMeter);
    };
    // Read under the row lock: `registry::retire_meter` changes this row,
    // so a retirement and an order cannot pass each other.
    if retired_at_ms.is_some() {
        return Err(CreateError::Retired);
    }
    let kwh = i64::from(req.kwh.get());
    if kwh > kwh_max {
        return Err(CreateError::TooLarge { max: kwh_max });
    }
    if let Some(student) = req.student_id {
        let n: i64 = on_tx!(tx, |c| sqlx::query_scalar(
            "select count(*) from orders where student_id = $1 and state = 'unpaid'"
        )
        .bind(student)
        .fetch_one(c)
        .await
        .map_err(Error::from)?);
        if n >= UNPAID_PER_STUDENT_MAX {
            return Err(CreateError::TooManyUnpaid {
                max: UNPAID_PER_STUDENT_MAX,
            });
        }
    }
    // Energy that may still reach the meter counts against its limit: paid
    // but undelivered orders, and unpaid ones (a payment may still arrive,
    // even after the order closed — that case is the meter's refusal path),
    // and energy a replacement carried to it (or a free allowance) not yet
    // delivered.
    let (pending, unpaid): (i64, i64) = on_tx!(tx, |c| {
        sqlx::query_as(
        "select coalesce(cast(sum(kwh * 100) as bigint), 0)
                  + coalesce((select cast(sum(r.carried_centikwh) as bigint) from meter_replacement r
                              where r.new_meter_id = $1 and r.delivered_at_ms is null), 0)
                  + coalesce((select cast(sum(s.centikwh) as bigint) from subsidy s
                              where s.meter_id = $1 and s.delivered_at_ms is null), 0),
                coalesce(cast(sum(case when state = 'unpaid' then 1 else 0 end) as bigint), 0)
         from orders where meter_id = $1 and state in ('unpaid', 'charging', 'delayed')"
    )
    .bind(meter_id)
    .fetch_one(c)
    .await
    .map_err(Error::from)?
    });
    if req.channel != Channel::Counter && unpaid >= UNPAID_PER_METER_MAX {
        return Err(CreateError::MeterUnpaidLimit {
            max: UNPAID_PER_METER_MAX,
        });
    }
    let projected = remaining.unwrap_or(0).max(0) + pending + kwh * 100;
    if projected > hoard_limit {
        let room = (hoard_limit - remaining.unwrap_or(0).max(0) - pending).max(0) / 100;
        return Err(CreateError::HoardingLimit {
            limit: CentiKwh::new(hoard_limit),
            room,
        });
    }
    let price_t = domain::UnitPrice::from_centifen_per_kwh(price)
        .ok_or_else(|| Error::Corrupt(format!("meter {meter_id} has price {price}")))?;
    let amount = price_t.amount_for(req.kwh);
    let bound = match req.student_id {
        Some(s) => {
            let n: i64 = on_tx!(tx, |c| sqlx::query_scalar(
                "select count(*) from binding where student_id = $1 and meter_id = $2"
            )
            .bind(s)
            .bind(meter_id)
            .fetch_one(c)
            .await
            .map_err(Error::from)?);
            n > 0
        }
        None => false,
    };
    let sql = format!(
        "insert into orders (out_trade_no, meter_id, student_id, area_id, kwh, unit_price_centifen_per_kwh,
                             amount_fen, channel, state, buyer_bound, operator, created_at_ms, expires_at_ms,
                             updated_at_ms)
         values ($1, $2, $3, $4, $5, $6, $7, $8, 'unpaid', $9, $10, $11, $12, $11)
         returning {ORDER_COLUMNS}"
    );
    let order: Order = on_tx!(tx, |c| sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
        .bind(new_out_trade_no(now_ms))
        .bind(meter_id)
        .bind(req.student_id)
        .bind(req.area_id)
        .bind(kwh)
        .bind(price)
        .bind(amount.get())
        .bind(req.channel.as_str())
        .bind(bound)
        .bind(req.operator)
        .bind(now_ms)
        .bind(order::expires_at_ms(now_ms))
        .fetch_one(c)
        .await
        .map_err(Error::from)?);
    Ok(order)
}

/// A counter sale (S16): the operator has the money in hand, so the order is
/// created and paid in one transaction and follows the normal delivery path.
pub async fn create_counter_sale(
    db: &Db,
    area_id: i64,
    meter_address: &str,
    kwh: WholeKwh,
    operator: &str,
    now_ms: i64,
) -> Result<Order, CreateError> {
    let mut tx = db.begin().await?;
    let paid =
        create_counter_sale_in(&mut tx, area_id, meter_address, kwh, operator, now_ms).await?;
    tx.commit().await?;
    Ok(paid)
}

/// [`create_counter_sale`] inside the caller's transaction (the counter API
/// records its idempotency key in the same transaction).
pub async fn create_counter_sale_in(
    tx: &mut Tx,
    area_id: i64,
    meter_address: &str,
    kwh: WholeKwh,
    operator: &str,
    now_ms: i64,
) -> Result<Order, CreateError> {
    let req = NewOrder {
        area_id,
        meter_address,
        student_id: None,
        kwh,
        channel: Channel::Counter,
        operator: Some(operator),
    };
    let order = create_in(tx, &req, now_ms).await?;
    Ok(pay_in(tx, &order, None, now_ms).await?)
}

/// A confirmed payment as reported by the provider (already verified).
#[derive(Debug, Clone)]
pub struct PaymentConfirmation<'a> {
    /// Our order number.
    pub out_trade_no: &'a str,
    /// The provider's transaction id.
    pub transaction_id: &'a str,
    /// Amount the provider says was paid.
    pub amount_fen: Fen,
}

/// What recording a payment did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaidOutcome {
    /// The payment was new: order now charging, ledger and delivery job written.
    Credited(Order),
    /// The payment was already recorded (duplicate notification); nothing changed.
    AlreadyRecorded(Order),
}

/// Why a payment was refused.
#[derive(Debug, thiserror::Error)]
pub enum PayError {
    /// No order with that number.
    #[error("unknown out_trade_no")]
    UnknownOrder,
    /// The paid amount differs from the order's amount.
    #[error("amount mismatch: order {} fen, paid {} fen", expected.get(), paid.get())]
    AmountMismatch {
        /// Our amount.
        expected: Fen,
        /// Their amount.
        paid: Fen,
    },
    /// The order is already paid under another transaction id.
    #[error("order already paid by another transaction")]
    OtherTransaction,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] Error),
}

/// Records a verified payment. Idempotent: the same confirmation any number
/// of times credits once. A payment for a closed (expired or cancelled) order
/// is credited too — the money arrived, so the energy is owed.
pub async fn record_payment(
    db: &Db,
    p: &PaymentConfirmation<'_>,
    now_ms: i64,
) -> Result<PaidOutcome, PayError> {
    let mut tx = db.begin().await?;
    let outcome = record_payment_in(&mut tx, p, now_ms).await?;
    tx.commit().await?;
    Ok(outcome)
}

/// [`record_payment`] that also writes the notification's audit row (see
/// [`log_notification`]) in the same transaction: one commit instead of two
/// on the hot path, and the log never disagrees with the payment. The
/// outcome names are `credited` and `duplicate`. A refused payment writes
/// nothing; the caller logs the refusal with [`log_notification`].
pub async fn record_payment_logged(
    db: &Db,
    p: &PaymentConfirmation<'_>,
    provider: &str,
    now_ms: i64,
) -> Result<PaidOutcome, PayError> {
    let mut tx = db.begin().await?;
    let outcome = record_payment_in(&mut tx, p, now_ms).await?;
    let name = match outcome {
        PaidOutcome::Credited(_) => "credited",
        PaidOutcome::AlreadyRecorded(_) => "duplicate",
    };
    on_tx!(&mut tx, |c| {
        sqlx::query(
        "insert into payment_notification (provider, out_trade_no, transaction_id, amount_fen, outcome, received_at_ms)
         values ($1, $2, $3, $4, $5, $6)"
    )
    .bind(provider)
    .bind(p.out_trade_no)
    .bind(p.transaction_id)
    .bind(p.amount_fen.get())
    .bind(name)
    .bind(now_ms)
    .execute(c)
    .await
    .map_err(Error::from)?
    .rows_affected()
    });
    tx.commit().await?;
    Ok(outcome)
}

async fn record_payment_in(
    tx: &mut Tx,
    p: &PaymentConfirmation<'_>,
    now_ms: i64,
) -> Result<PaidOutcome, PayError> {
    // Locked, so that concurrent duplicates of one notification wait for the
    // first instead of failing with a spurious "changed concurrently".
    let order = by_out_trade_no_locked_in(tx, p.out_trade_no)
        .await?
        .ok_or(PayError::UnknownOrder)?;
    if order.amount_fen != p.amount_fen {
        return Err(PayError::AmountMismatch {
            expected: order.amount_fen,
            paid: p.amount_fen,
        });
    }
    let t = order::transition(
        order.state,
        OrderEvent::PaymentConfirmed,
        order.created_at_ms,
        now_ms,
    )
    .map_err(Error::from)?;
    if !t.changed {
        // A paid order without a transaction id was paid at the counter: a
        // provider payment for it is a second payment, not a duplicate.
        if order.transaction_id.as_deref() != Some(p.transaction_id) {
            return Err(PayError::OtherTransaction);
        }
        return Ok(PaidOutcome::AlreadyRecorded(order));
    }
    let paid = pay_in(tx, &order, Some(p.transaction_id), now_ms).await?;
    Ok(PaidOutcome::Credited(paid))
}

/// Moves an unpaid or closed order to charging with its ledger rows and its
/// delivery job, inside `tx`.
async fn pay_in(
    tx: &mut Tx,
    order: &Order,
    transaction_id: Option<&str>,
    now_ms: i64,
) -> Result<Order> {
    // The meter's row lock orders this payment with a replacement of the
    // meter (crate::replace): a replacement committed before the lock was
    // granted is seen by the next statement, and the energy goes to the
    // meter that replaced it; one that comes later waits for this commit
    // and then refuses (the order is in flight).
    crate::replace::lock_meter(tx, order.meter_id.get()).await?;
    let meter_id = crate::replace::successor_in(tx, order.meter_id.get())
        .await?
        .unwrap_or(order.meter_id.get());
    let sql = format!(
        "update orders set state = 'charging', transaction_id = $2, paid_at_ms = $3, updated_at_ms = $3,
                meter_id = $4
         where id = $1 and state in ('unpaid', 'closed') returning {ORDER_COLUMNS}"
    );
    let paid: Option<Order> = on_tx!(tx, |c| sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
        .bind(order.id.get())
        .bind(transaction_id)
        .bind(now_ms)
        .bind(meter_id)
        .fetch_optional(c)
        .await?);
    let paid = paid.ok_or_else(|| {
        Error::Conflict(format!("order {} changed concurrently", order.out_trade_no))
    })?;
    let transfers = domain::ledger::on_paid(
        paid.channel,
        paid.amount_fen,
        paid.centikwh(),
        paid.meter_id,
    );
    ledger::insert(tx, paid.id, &transfers, now_ms).await?;
    let key = format!("deliver:{}", paid.id);
    let payload = format!(
        "{{\"order_id\":{},\"meter_id\":{}}}",
        paid.id, paid.meter_id
    );
    jobs::enqueue(
        tx,
        &jobs::NewJob {
            queue: DELIVER_QUEUE,
            dedup_key: Some(&key),
            payload: &payload,
            priority: DELIVER_PRIORITY,
            run_at_ms: now_ms,
            attempts_max: DELIVER_ATTEMPTS_MAX,
        },
        now_ms,
    )
    .await?;
    Ok(paid)
}

/// Records the meter's confirmation of an order's energy in `tx` (the
/// head-end commits it together with its job and meter state). Returns
/// false if the order was already completed.
pub async fn mark_delivered(tx: &mut Tx, order_id: OrderId, now_ms: i64) -> Result<bool> {
    let order = by_id_in(tx, order_id)
        .await?
        .ok_or(Error::NotFound("order"))?;
    let t = order::transition(
        order.state,
        OrderEvent::DeliveryConfirmed,
        order.created_at_ms,
        now_ms,
    )?;
    if !t.changed {
        return Ok(false);
    }
    let n = on_tx!(tx, |c| sqlx::query(
        "update orders set state = 'completed', completed_at_ms = $2, updated_at_ms = $2
         where id = $1 and state in ('charging', 'delayed')"
    )
    .bind(order_id.get())
    .bind(now_ms)
    .execute(c)
    .await?
    .rows_affected());
    if n != 1 {
        // Another worker completed it between our read and our update
        // (PostgreSQL re-checks the guard on the row it waited for).
        let now = by_id_in(tx, order_id)
            .await?
            .ok_or(Error::NotFound("order"))?;
        if now.state == OrderState::Completed {
            return Ok(false);
        }
        return Err(Error::Conflict(format!(
            "order {order_id} changed concurrently (now {})",
            now.state.as_str()
        )));
    }
    let transfers =
        domain::ledger::on_delivered(order.amount_fen, order.centikwh(), order.meter_id);
    ledger::insert(tx, order_id, &transfers, now_ms).await?;
    // Delivered: nobody needs to look at it any more.
    crate::exceptions::resolve_all_in(tx, order_id, "delivered", "(head-end)", None, now_ms)
        .await?;
    crate::notify::delivered_in(tx, order_id.get(), now_ms).await?;
    Ok(true)
}

/// What [`assign_purchase_seq`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignment {
    /// The order's purchase sequence number (new or assigned earlier).
    Assigned(i64),
    /// Another purchase of the same meter goes first: it holds a number
    /// whose outcome is not settled yet, or it was paid earlier and has no
    /// number yet. Not a failure: the order is woken when that one settles.
    Wait(String),
    /// The order is no longer waiting for delivery (refunding, refunded,
    /// completed; `None` when it vanished): nothing may be sent.
    NotDeliverable(Option<OrderState>),
}

impl Assignment {
    /// The number, if one is assigned.
    pub fn seq(&self) -> Option<i64> {
        match self {
            Assignment::Assigned(s) => Some(*s),
            _ => None,
        }
    }
}

/// Assigns the order's meter purchase sequence number if it has none yet,
/// as `max(meter's last assigned, meter's read purchase count) + 1`.
/// Idempotent: once assigned, the same number is returned forever.
///
/// The rules, all checked under the meter's row lock and the order's own
/// guarded update (so two head-ends, or a head-end and a refund, racing on
/// PostgreSQL READ COMMITTED cannot both win):
/// - only an order that is still *charging* or *delayed* gets a number;
/// - no new number while another order of the same meter holds one whose
///   outcome is unsettled (the meter's count settles it, in number order);
/// - among the meter's orders without a number, the earliest paid goes
///   first (purchases reach a meter in payment order).
pub async fn assign_purchase_seq(db: &Db, order_id: OrderId, now_ms: i64) -> Result<Assignment> {
    let mut tx = db.begin().await?;
    let meter_sql = match tx.backend() {
        crate::Backend::Sqlite => {
            "select m.id from meter m join orders o on o.meter_id = m.id where o.id = $1"
        }
        crate::Backend::Postgres => {
            "select m.id from meter m join orders o on o.meter_id = m.id where o.id = $1 for update of m"
        }
    };
    let meter_id: i64 = on_tx!(&mut tx, |c| sqlx::query_scalar(meter_sql)
        .bind(order_id.get())
        .fetch_optional(c)
        .await?)
    .ok_or(Error::NotFound("order"))?;
    // Read after the lock: at READ COMMITTED this statement sees whatever
    // the previous holder of the lock committed.
    let order = by_id_in(&mut tx, order_id)
        .await?
        .ok_or(Error::NotFound("order"))?;
    if !matches!(order.state, OrderState::Charging | OrderState::Delayed) {
        return Ok(Assignment::NotDeliverable(Some(order.state)));
    }
    if let Some(seq) = order.purchase_seq {
        return Ok(Assignment::Assigned(seq));
    }
    let holder: Option<(i64, i64)> = on_tx!(&mut tx, |c| {
        sqlx::query_as(
        "select id, purchase_seq from orders
         where meter_id = $1 and id <> $2 and purchase_seq is not null and state in ('charging', 'delayed')
         order by purchase_seq limit 1"
    )
    .bind(meter_id)
    .bind(order_id.get())
    .fetch_optional(c)
    .await?
    });
    if let Some((other, seq)) = holder {
        return Ok(Assignment::Wait(format!(
            "waiting for purchase {seq} of this meter (order {other}) to settle"
        )));
    }
    // A free allowance holding a number (crate::subsidy) settles first.
    if let Some(why) = crate::subsidy::number_held(&mut tx, meter_id, Some(order_id), None).await? {
        return Ok(Assignment::Wait(why));
    }
    // A replaced meter's carried energy goes to its successor first
    // (crate::replace): it was in the old meter before any order for the
    // new one was paid.
    let carry: Option<i64> = on_tx!(&mut tx, |c| sqlx::query_scalar(
        "select id from meter_replacement where new_meter_id = $1 and carried_centikwh > 0
           and delivered_at_ms is null"
    )
    .bind(meter_id)
    .fetch_optional(c)
    .await?);
    if let Some(r) = carry {
        return Ok(Assignment::Wait(format!(
            "waiting for the energy carried by replacement {r} of this meter"
        )));
    }
    let paid_at = order.paid_at_ms.unwrap_or(i64::MAX);
    let earlier: Option<i64> = on_tx!(&mut tx, |c| sqlx::query_scalar(
        "select o.id from orders o join job j on j.dedup_key = 'deliver:' || cast(o.id as text)
         where o.meter_id = $1 and o.id <> $2 and o.purchase_seq is null
           and o.state in ('charging', 'delayed') and j.state = 'queued'
           and (o.paid_at_ms < $3 or (o.paid_at_ms = $3 and o.id < $2))
         order by o.paid_at_ms, o.id limit 1"
    )
    .bind(meter_id)
    .bind(order_id.get())
    .bind(paid_at)
    .fetch_optional(c)
    .await?);
    if let Some(other) = earlier {
        return Ok(Assignment::Wait(format!(
            "waiting for order {other} of this meter, paid earlier"
        )));
    }
    // The dialects name the two-argument maximum differently.
    let sql = match tx.backend() {
        crate::Backend::Sqlite => {
            "update meter set purchase_seq_last = 1 + max(purchase_seq_last,
                    coalesce((select purchase_count from meter_state where meter_id = meter.id), 0))
             where id = $1 returning purchase_seq_last"
        }
        crate::Backend::Postgres => {
            "update meter set purchase_seq_last = 1 + greatest(purchase_seq_last,
                    coalesce((select purchase_count from meter_state where meter_id = meter.id), 0))
             where id = $1 returning purchase_seq_last"
        }
    };
    let seq: i64 = on_tx!(&mut tx, |c| sqlx::query_scalar(sql)
        .bind(meter_id)
        .fetch_one(c)
        .await?);
    let n = on_tx!(&mut tx, |c| sqlx::query(
        "update orders set purchase_seq = $2, updated_at_ms = $3
         where id = $1 and purchase_seq is null and state in ('charging', 'delayed')"
    )
    .bind(order_id.get())
    .bind(seq)
    .bind(now_ms)
    .execute(c)
    .await?
    .rows_affected());
    if n != 1 {
        // A refund took the order first (its guarded update won the row):
        // roll back the meter's number too.
        drop(tx);
        let state = by_id(db, order_id).await?.map(|o| o.state);
        return Ok(Assignment::NotDeliverable(state));
    }
    tx.commit().await?;
    Ok(Assignment::Assigned(seq))
}

/// Gives back a purchase number the meter provably never applied: it
/// refused the recharge and a read-back showed its purchase count below
/// the number. Called in the transaction that records the refusal (fenced
/// by the delivery job). The order keeps its money and becomes refundable
/// (no frame with this number can be applied any more); the meter's next
/// purchase gets the number again. Returns false when the order no longer
/// holds `seq` or the meter has assigned a later number.
pub async fn release_unapplied_seq(
    tx: &mut Tx,
    order_id: OrderId,
    seq: i64,
    meter_count: i64,
    now_ms: i64,
) -> Result<bool> {
    if meter_count >= seq {
        return Err(Error::Conflict(format!(
            "purchase {seq} may be on the meter (count {meter_count}); it cannot be given back"
        )));
    }
    let meter: Option<i64> = on_tx!(tx, |c| {
        sqlx::query_scalar(
        "update orders set purchase_seq = null, updated_at_ms = $3
         where id = $1 and purchase_seq = $2 and state in ('charging', 'delayed') returning meter_id"
    )
    .bind(order_id.get())
    .bind(seq)
    .bind(now_ms)
    .fetch_optional(c)
    .await?
    });
    let Some(meter_id) = meter else {
        return Ok(false);
    };
    let n = on_tx!(tx, |c| sqlx::query(
        "update meter set purchase_seq_last = $2 - 1 where id = $1 and purchase_seq_last = $2"
    )
    .bind(meter_id)
    .bind(seq)
    .execute(c)
    .await?
    .rows_affected());
    if n != 1 {
        return Err(Error::Conflict(format!(
            "meter {meter_id} has a number after {seq}; purchase {seq} cannot be given back"
        )));
    }
    Ok(true)
}

/// Staff "deliver again" for an order flagged for staff (its delivery job
/// dead-lettered: a refusal by the meter, a purchase-count gap): the job
/// runs again now and the head-end reads the meter's count before anything
/// else, so this is safe whatever happened before. Returns false when the
/// order is not delayed or its job is not dead.
pub async fn redeliver(db: &Db, order_id: OrderId, now_ms: i64) -> Result<bool> {
    let mut tx = db.begin().await?;
    let ok = redeliver_in(&mut tx, order_id, now_ms).await?;
    tx.commit().await?;
    Ok(ok)
}

/// [`redeliver`] inside the caller's transaction.
pub(crate) async fn redeliver_in(tx: &mut Tx, order_id: OrderId, now_ms: i64) -> Result<bool> {
    let n = on_tx!(tx, |c| sqlx::query(
        "update job set state = 'queued', attempts = 0, run_at_ms = $2, locked_by = null,
                locked_until_ms = null, last_error = 'staff: deliver again', updated_at_ms = $2
         where dedup_key = 'deliver:' || cast($1 as text) and state = 'dead'
           and exists (select 1 from orders where id = $1 and state = 'delayed')"
    )
    .bind(order_id.get())
    .bind(now_ms)
    .execute(c)
    .await?
    .rows_affected());
    Ok(n == 1)
}

/// Dedup keys of the delivery jobs of the other undelivered orders of a
/// meter (to wake them when one of its purchases settles).
pub(crate) async fn sibling_delivery_keys(
    tx: &mut Tx,
    meter_id: MeterId,
    order_id: OrderId,
) -> Result<Vec<String>> {
    let ids: Vec<i64> = on_tx!(tx, |c| {
        sqlx::query_scalar(
        "select id from orders where meter_id = $1 and id <> $2 and state in ('charging', 'delayed')
         order by paid_at_ms, id"
    )
    .bind(meter_id.get())
    .bind(order_id.get())
    .fetch_all(c)
    .await?
    });
    Ok(ids.into_iter().map(|id| format!("deliver:{id}")).collect())
}

/// Marks charging orders paid before `now_ms - window_ms` as delayed
/// (visible to the student and staff, refundable). Returns how many.
/// Each one is flagged for staff ([`crate::exceptions`]) in the same
/// transaction.
pub async fn mark_overdue(db: &Db, window_ms: i64, now_ms: i64) -> Result<u64> {
    let mut tx = db.begin().await?;
    // The ids come from the guarded update itself, so an order completed
    // at this moment is neither marked nor flagged.
    let ids: Vec<i64> = on_tx!(&mut tx, |c| sqlx::query_scalar(
        "update orders set state = 'delayed', delayed_at_ms = $1, updated_at_ms = $1
         where state = 'charging' and paid_at_ms <= $2 returning id"
    )
    .bind(now_ms)
    .bind(now_ms - window_ms)
    .fetch_all(c)
    .await?);
    let detail = format!(
        "not delivered within the delivery window ({} s)",
        window_ms / 1000
    );
    for id in &ids {
        crate::exceptions::raise_in(
            &mut tx,
            OrderId::new(*id),
            crate::exceptions::DELAYED,
            &detail,
            now_ms,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(u64::try_from(ids.len()).unwrap_or(u64::MAX))
}

/// Unpaid orders whose two hours are up; the caller closes them at the
/// provider first, then calls [`close`].
pub async fn expired_unpaid(db: &Db, now_ms: i64, limit: i64) -> Result<Vec<Order>> {
    Ok(on_db!(db, |p| sqlx::query_as(select_orders!(
        "where state = 'unpaid' and expires_at_ms <= $1 order by id limit $2"
    ))
    .bind(now_ms)
    .bind(limit)
    .fetch_all(p)
    .await?))
}

/// Closes an unpaid order: `Expire` (only at or after two hours) or
/// `Cancel` (the student's choice). Returns the order after the event.
pub async fn close(db: &Db, order_id: OrderId, event: OrderEvent, now_ms: i64) -> Result<Order> {
    let mut tx = db.begin().await?;
    let order = by_id_in(&mut tx, order_id)
        .await?
        .ok_or(Error::NotFound("order"))?;
    let t = order::transition(order.state, event, order.created_at_ms, now_ms)?;
    if t.changed {
        on_tx!(&mut tx, |c| {
            sqlx::query(
            "update orders set state = 'closed', closed_at_ms = $2, updated_at_ms = $2 where id = $1 and state = 'unpaid'"
        )
        .bind(order_id.get())
        .bind(now_ms)
        .execute(c)
        .await?.rows_affected()
        });
    }
    let order = by_id_in(&mut tx, order_id)
        .await?
        .ok_or(Error::NotFound("order"))?;
    tx.commit().await?;
    Ok(order)
}

/// Stores the provider's prepay id on an unpaid order.
pub async fn set_prepay_id(db: &Db, order_id: OrderId, prepay_id: &str, now_ms: i64) -> Result<()> {
    on_db!(db, |p| sqlx::query(
        "update orders set prepay_id = $2, updated_at_ms = $3 where id = $1"
    )
    .bind(order_id.get())
    .bind(prepay_id)
    .bind(now_ms)
    .execute(p)
    .await?
    .rows_affected());
    Ok(())
}

/// Starts a refund of a delayed order: cancels its delivery job (refused
/// while a head-end worker holds it, since a frame could still be on the
/// wire, and refused once a purchase sequence number was assigned, since a
/// frame may have reached the meter) and moves the order to refunding with
/// a refund number.
pub async fn request_refund(db: &Db, order_id: OrderId, now_ms: i64) -> Result<Order> {
    let mut tx = db.begin().await?;
    let o = request_refund_in(&mut tx, order_id, now_ms).await?;
    tx.commit().await?;
    Ok(o)
}

/// [`request_refund`] inside the caller's transaction (the console writes
/// its audit entry and the refunding operator in the same one). Not a
/// row lock on the order: the head-end takes the job row before the
/// order's, so this takes them in the same order (the job's guarded
/// update below), and of two refunds at once the second matches no job.
pub(crate) async fn request_refund_in(
    tx: &mut Tx,
    order_id: OrderId,
    now_ms: i64,
) -> Result<Order> {
    let order = by_id_in(tx, order_id)
        .await?
        .ok_or(Error::NotFound("order"))?;
    order::transition(
        order.state,
        OrderEvent::RefundRequested,
        order.created_at_ms,
        now_ms,
    )?;
    // Once a purchase sequence number is assigned, a frame may have reached
    // the meter with its reply lost: refunding then could pay the money back
    // while the energy sits on the meter, and would leave the meter expecting
    // that number so every later purchase looks like a gap. Only the meter's
    // own purchase count can settle it, and the head-end keeps reading it;
    // until then the order stays delayed (visible to staff), never guessed.
    if let Some(seq) = order.purchase_seq {
        return Err(Error::Conflict(format!(
            "purchase {seq} may already be on the meter; it can be refunded only if it was never sent, \
             so it waits for the meter to report its purchase count"
        )));
    }
    // Cancel the delivery job unless a worker holds a live lease on it (a
    // frame could be on the wire). Guarded: a worker claiming it at this
    // moment either wins the row first (and this matches nothing) or finds
    // it done.
    let key = format!("deliver:{order_id}");
    let cancelled = on_tx!(tx, |c| {
        sqlx::query(
            "update job set state = 'done', last_error = 'cancelled: order refunded', locked_by = null,
                    locked_until_ms = null, updated_at_ms = $2
             where dedup_key = $1 and state in ('queued', 'dead')
               and (locked_until_ms is null or locked_until_ms < $2)",
        )
        .bind(&key)
        .bind(now_ms)
        .execute(c)
        .await?
        .rows_affected()
    });
    if cancelled != 1 {
        return Err(Error::Conflict(
            "the meter delivery is in progress; try again in a minute".to_owned(),
        ));
    }
    let sql = format!(
        "update orders set state = 'refunding', refund_no = $2, updated_at_ms = $3
         where id = $1 and state = 'delayed' and purchase_seq is null
         returning {ORDER_COLUMNS}"
    );
    // Fixed once per attempt and stored, so retries of this attempt reuse it
    // (WeChat refunds one number at most once); a new attempt after a closed
    // refund needs a new number, because WeChat will not reopen a closed one.
    let refund_no = format!(
        "RF{}T{now_ms}",
        order
            .out_trade_no
            .strip_prefix("DW")
            .unwrap_or(&order.out_trade_no)
    );
    let o: Option<Order> = on_tx!(tx, |c| sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
        .bind(order_id.get())
        .bind(&refund_no)
        .bind(now_ms)
        .fetch_optional(c)
        .await?);
    let o = o.ok_or_else(|| Error::Conflict(format!("order {order_id} changed concurrently")))?;
    // Orders of the meter paid later no longer wait for this one.
    let keys = sibling_delivery_keys(tx, o.meter_id, o.id).await?;
    jobs::wake(tx, &keys, now_ms).await?;
    Ok(o)
}

/// Records the provider's answer to a refund: success writes the refund
/// transfers; failure puts the order back to delayed for staff.
pub async fn finish_refund(
    db: &Db,
    refund_no: &str,
    succeeded: bool,
    now_ms: i64,
) -> Result<Order> {
    let mut tx = db.begin().await?;
    let sql = format!("select {ORDER_COLUMNS} from orders where refund_no = $1");
    let order: Order = on_tx!(&mut tx, |c| sqlx::query_as(sqlx::AssertSqlSafe(
        sql.clone()
    ))
    .bind(refund_no)
    .fetch_optional(c)
    .await?)
    .ok_or(Error::NotFound("refund"))?;
    let event = if succeeded {
        OrderEvent::RefundSucceeded
    } else {
        OrderEvent::RefundFailed
    };
    let t = order::transition(order.state, event, order.created_at_ms, now_ms)?;
    // Every change is guarded by the state and the refund number, so two
    // answers processed at once (a notification and a query) change it once.
    if t.changed {
        if succeeded {
            let n = on_tx!(&mut tx, |c| {
                sqlx::query(
                    "update orders set state = 'refunded', refunded_at_ms = $2, updated_at_ms = $2
                     where id = $1 and state = 'refunding' and refund_no = $3",
                )
                .bind(order.id.get())
                .bind(now_ms)
                .bind(refund_no)
                .execute(c)
                .await?
                .rows_affected()
            });
            if n == 1 {
                let transfers = domain::ledger::on_refunded(
                    order.channel,
                    order.amount_fen,
                    order.centikwh(),
                    order.meter_id,
                );
                ledger::insert(&mut tx, order.id, &transfers, now_ms).await?;
            }
        } else {
            let n = on_tx!(&mut tx, |c| {
                sqlx::query(
                    "update orders set state = 'delayed', refund_no = null, updated_at_ms = $2
                     where id = $1 and state = 'refunding' and refund_no = $3",
                )
                .bind(order.id.get())
                .bind(now_ms)
                .bind(refund_no)
                .execute(c)
                .await?
                .rows_affected()
            });
            if n == 1 {
                crate::exceptions::raise_in(
                    &mut tx,
                    order.id,
                    crate::exceptions::REFUND_FAILED,
                    &format!("refund {refund_no} closed without paying"),
                    now_ms,
                )
                .await?;
                // The money is still held and the energy still owed: the
                // refund request had cancelled the delivery, so it runs
                // again (staff may still try another refund).
                on_tx!(&mut tx, |c| {
                    sqlx::query(
                        "update job set state = 'queued', attempts = 0, run_at_ms = $2, locked_by = null,
                                locked_until_ms = null, last_error = 'refund failed; delivering again',
                                updated_at_ms = $2
                         where dedup_key = $1 and state = 'done'",
                    )
                    .bind(format!("deliver:{}", order.id))
                    .bind(now_ms)
                    .execute(c)
                    .await?
                    .rows_affected()
                });
            }
        }
    }
    let order = by_id_in(&mut tx, order.id)
        .await?
        .ok_or(Error::NotFound("order"))?;
    tx.commit().await?;
    Ok(order)
}

/// An order by row id.
pub async fn by_id(db: &Db, order_id: OrderId) -> Result<Option<Order>> {
    Ok(on_db!(db, |p| sqlx::query_as(select_orders!(
        "where id = $1"
    ))
    .bind(order_id.get())
    .fetch_optional(p)
    .await?))
}

/// An order by its number.
pub async fn by_out_trade_no(db: &Db, out_trade_no: &str) -> Result<Option<Order>> {
    Ok(on_db!(db, |p| sqlx::query_as(select_orders!(
        "where out_trade_no = $1"
    ))
    .bind(out_trade_no)
    .fetch_optional(p)
    .await?))
}

async fn by_id_in(tx: &mut Tx, order_id: OrderId) -> Result<Option<Order>> {
    Ok(on_tx!(tx, |c| sqlx::query_as(select_orders!(
        "where id = $1"
    ))
    .bind(order_id.get())
    .fetch_optional(c)
    .await?))
}

/// An order by number, row-locked until the end of `tx` on PostgreSQL
/// (SQLite's `BEGIN IMMEDIATE` already serializes writers).
async fn by_out_trade_no_locked_in(tx: &mut Tx, out_trade_no: &str) -> Result<Option<Order>> {
    let sql = match tx.backend() {
        crate::Backend::Sqlite => select_orders!("where out_trade_no = $1"),
        crate::Backend::Postgres => select_orders!("where out_trade_no = $1 for update"),
    };
    Ok(on_tx!(tx, |c| sqlx::query_as(sql)
        .bind(out_trade_no)
        .fetch_optional(c)
        .await?))
}

/// Paid orders of `channel` whose payment was recorded in `[from_ms, to_ms)`,
/// oldest first, at most `limit` (trade-bill reconciliation).
pub async fn paid_between(
    db: &Db,
    channel: Channel,
    from_ms: i64,
    to_ms: i64,
    limit: i64,
) -> Result<Vec<Order>> {
    Ok(on_db!(db, |p| {
        sqlx::query_as(select_orders!(
        "where channel = $1 and paid_at_ms >= $2 and paid_at_ms < $3 order by paid_at_ms, id limit $4"
    ))
    .bind(channel.as_str())
    .bind(from_ms)
    .bind(to_ms)
    .bind(limit)
    .fetch_all(p)
    .await?
    }))
}

/// A student's purchase records (S12), newest first. Orders that were never
/// paid disappear once closed (S11: unpaid orders are removed after 2 hours).
pub async fn for_student(db: &Db, student_id: i64, limit: i64) -> Result<Vec<Order>> {
    Ok(on_db!(db, |p| sqlx::query_as(select_orders!(
        "where student_id = $1 and state <> 'closed' order by created_at_ms desc, id desc limit $2"
    ))
    .bind(student_id)
    .bind(limit)
    .fetch_all(p)
    .await?))
}

/// Unpaid orders with a prepay id created at or before `created_before_ms`,
/// for the reconciliation worker: each buyer's oldest first, then each
/// buyer's second, and so on (at most `per_buyer` each), so one buyer's
/// many orders cannot push everyone else's out of a tick.
pub async fn unpaid_to_reconcile(
    db: &Db,
    created_before_ms: i64,
    per_buyer: i64,
    limit: i64,
) -> Result<Vec<Order>> {
    let sql = format!(
        "select {ORDER_COLUMNS} from (
             select o.*, row_number() over (partition by coalesce(o.student_id, -o.id) order by o.id) as rn
             from orders o
             where o.state = 'unpaid' and o.prepay_id is not null and o.created_at_ms <= $1
         ) t where rn <= $2 order by rn, id limit $3"
    );
    Ok(on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(
        sql.clone()
    ))
    .bind(created_before_ms)
    .bind(per_buyer)
    .bind(limit)
    .fetch_all(p)
    .await?))
}

/// Orders in `state`, oldest first (reconciliation and staff views).
pub async fn in_state(db: &Db, state: OrderState, limit: i64) -> Result<Vec<Order>> {
    Ok(on_db!(db, |p| sqlx::query_as(select_orders!(
        "where state = $1 order by id limit $2"
    ))
    .bind(state.as_str())
    .bind(limit)
    .fetch_all(p)
    .await?))
}

/// Records a payment notification we received (accepted or refused) for
/// audit and reconciliation.
pub async fn log_notification(
    db: &Db,
    provider: &str,
    out_trade_no: Option<&str>,
    transaction_id: Option<&str>,
    amount_fen: Option<i64>,
    outcome: &str,
    now_ms: i64,
) -> Result<()> {
    on_db!(db, |p| {
        sqlx::query(
        "insert into payment_notification (provider, out_trade_no, transaction_id, amount_fen, outcome, received_at_ms)
         values ($1, $2, $3, $4, $5, $6)"
    )
    .bind(provider)
    .bind(out_trade_no)
    .bind(transaction_id)
    .bind(amount_fen)
    .bind(outcome)
    .bind(now_ms)
    .execute(p)
    .await?.rows_affected()
    });
    Ok(())
}

/// The most recent logged notifications, newest first, as
/// `(out_trade_no, outcome)` (audit views and tests).
pub async fn recent_notifications(db: &Db, limit: i64) -> Result<Vec<(Option<String>, String)>> {
    Ok(on_db!(db, |p| sqlx::query_as(
        "select out_trade_no, outcome from payment_notification order by id desc limit $1"
    )
    .bind(limit)
    .fetch_all(p)
    .await?))
}
