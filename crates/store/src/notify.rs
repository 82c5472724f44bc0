//! Inbox notifications that follow from meter events (S15): "your purchase
//! has reached the meter" and "remaining energy is low". Every message has a
//! dedup key, so a repeated event never notifies twice (I9). Messages are
//! stored as [`MessageArgs`] (kind + arguments naming the meter's building,
//! room and number) and rendered in the reader's language when read. The
//! inbox always gets the message; each new inbox message also enqueues its
//! WeChat template copy in the same transaction ([`crate::wechat_outbox`],
//! issue 15), which the sender pushes to followers.

use crate::message::{self, MessageArgs, Place};
use crate::wechat_outbox::{self, OutboxArgs};
use crate::{Db, Result, Tx, on_db, on_tx};

/// Days of usage [`days_left_in`] averages over (the most recent complete ones).
const USAGE_DAYS: i64 = 7;
/// Fewer complete days than this: no estimate in days.
const USAGE_DAYS_MIN: usize = 3;

/// A buyer's name as a roommate sees it: the first character and `**`
/// ("张**"); `None` for a student without a name.
fn masked(name: &str) -> Option<String> {
    name.trim().chars().next().map(|c| format!("{c}**"))
}

/// Whole days `remaining_centikwh` lasts at the meter's recent daily usage
/// (the mean of its last [`USAGE_DAYS`] complete days), when it has at
/// least [`USAGE_DAYS_MIN`] of them and uses anything.
async fn days_left_in(tx: &mut Tx, meter_id: i64, remaining_centikwh: i64) -> Result<Option<i64>> {
    let usage: Vec<i64> = on_tx!(tx, |c| sqlx::query_scalar(
        "select usage_centikwh from daily_usage
         where meter_id = $1 and status = 'ok' and usage_centikwh is not null
         order by day desc limit $2"
    )
    .bind(meter_id)
    .bind(USAGE_DAYS)
    .fetch_all(c)
    .await?);
    if usage.len() < USAGE_DAYS_MIN {
        return Ok(None);
    }
    let total: i64 = usage.iter().sum();
    if total <= 0 {
        return Ok(None);
    }
    let per_day = total / i64::try_from(usage.len()).unwrap_or(1);
    Ok(Some(remaining_centikwh.max(0) / per_day.max(1)))
}

/// Most low-balance messages one [`scan_low_balance`] writes; the rest
/// follow on the next scan.
pub const LOW_BALANCE_SCAN_MAX: i64 = 1_000;

/// One recipient of a message with the meter's place, as the queries below
/// select it.
type PlacedRow = (i64, String, String, String, String);

fn place_of(row: &PlacedRow) -> Place {
    Place {
        building_zh: row.1.clone(),
        building_en: row.2.clone(),
        room: row.3.clone(),
        meter: row.4.clone(),
    }
}

/// Writes "delivered" messages for an order, in the transaction that
/// completes it: to the buyer and to every student bound to the meter.
pub async fn delivered_in(tx: &mut Tx, order_id: i64, now_ms: i64) -> Result<u64> {
    let order: Option<(i64, String, Option<i64>, Option<String>)> = on_tx!(tx, |c| sqlx::query_as(
        "select o.kwh, o.out_trade_no, o.student_id, s.name from orders o
         left join student s on s.id = o.student_id where o.id = $1"
    )
    .bind(order_id)
    .fetch_optional(c)
    .await?);
    let Some((kwh, out_trade_no, buyer, buyer_name)) = order else {
        return Ok(0);
    };
    let recipients: Vec<PlacedRow> = on_tx!(tx, |c| {
        sqlx::query_as(
        "select s.student_id, b.name_zh, b.name_en, r.number, m.address
         from orders o
         join meter m on m.id = o.meter_id
         join room r on r.id = m.room_id
         join building b on b.id = r.building_id
         join (select student_id, meter_id from binding
               union select student_id, meter_id from orders where id = $1 and student_id is not null) s
           on s.meter_id = o.meter_id
         where o.id = $1
         order by s.student_id"
    )
    .bind(order_id)
    .fetch_all(c)
    .await?
    });
    let mut n = 0;
    for row in &recipients {
        let args = MessageArgs::Delivered {
            place: place_of(row),
            kwh,
            out_trade_no: out_trade_no.clone(),
        };
        let key = format!("delivered:{order_id}:{}", row.0);
        if message::insert_in(tx, row.0, &args, Some(&key), now_ms).await? {
            n += 1;
            let is_buyer = buyer == Some(row.0);
            let paid_by_other = match buyer {
                Some(_) if !is_buyer => {
                    Some(buyer_name.as_deref().and_then(masked).unwrap_or_default())
                }
                _ => None,
            };
            let wx = OutboxArgs {
                message: args,
                days_left: None,
                paid_by_other,
            };
            // The buyer is waiting for this one: pushed even in quiet hours.
            let event = format!("delivered:{order_id}");
            wechat_outbox::enqueue_in(tx, &event, row.0, &wx, is_buyer, now_ms).await?;
        }
    }
    Ok(n)
}

/// Writes "power cut for balance" messages to every student bound to the
/// meter, with their WeChat copies, in the transaction that records the
/// meter's `trip` event for balance (store::meters::record): once per
/// purchase cycle — the key holds the meter's purchase count, so a trip
/// seen again (a head-end restart re-reads an open relay) tells nobody twice.
pub async fn power_cut_in(tx: &mut Tx, meter_id: i64, now_ms: i64) -> Result<u64> {
    let binders: Vec<i64> = on_tx!(tx, |c| sqlx::query_scalar(
        "select student_id from binding where meter_id = $1 order by student_id"
    )
    .bind(meter_id)
    .fetch_all(c)
    .await?);
    if binders.is_empty() {
        return Ok(0);
    }
    let purchases: Option<i64> = on_tx!(tx, |c| sqlx::query_scalar(
        "select coalesce(purchase_count, 0) from meter_state where meter_id = $1"
    )
    .bind(meter_id)
    .fetch_optional(c)
    .await?);
    let place = message::place_in(tx, domain::MeterId::new(meter_id)).await?;
    let event = format!("cut:{meter_id}:{}", purchases.unwrap_or(0));
    let mut n = 0;
    for student_id in binders {
        let args = MessageArgs::PowerCut {
            place: place.clone(),
        };
        let key = format!("{event}:{student_id}");
        if message::insert_in(tx, student_id, &args, Some(&key), now_ms).await? {
            n += 1;
            let wx = OutboxArgs {
                message: args,
                days_left: None,
                paid_by_other: None,
            };
            wechat_outbox::enqueue_in(tx, &event, student_id, &wx, false, now_ms).await?;
        }
    }
    Ok(n)
}

/// Sends a low-balance message to every student bound to a meter whose last
/// read remaining energy is below its threshold (the campus policy's for its
/// building or area, else the meter's own: `store::policy`) — once per crossing: the
/// key includes the meter's purchase count, which a recharge advances, so
/// the next crossing (after the next purchase) notifies again. At most
/// [`LOW_BALANCE_SCAN_MAX`] per call.
pub async fn scan_low_balance(db: &Db, now_ms: i64) -> Result<u64> {
    // The key is the one messages have carried since migration 0001, so a
    // crossing already told in the old format is not told again.
    #[expect(clippy::type_complexity, reason = "one row of the query below")]
    let due: Vec<(i64, String, String, String, String, i64, String, i64, i64)> = on_db!(db, |p| {
        sqlx::query_as(concat!(
            "select bd.student_id, b.name_zh, b.name_en, r.number, m.address, st.remaining_centikwh,
                    'low:' || cast(m.id as text) || ':' || cast(coalesce(st.purchase_count, 0) as text)
                        || ':' || cast(bd.student_id as text) as dedup_key,
                    m.id, coalesce(st.purchase_count, 0)
             from meter_state st
             join meter m on m.id = st.meter_id
             join room r on r.id = m.room_id
             join building b on b.id = r.building_id
             join binding bd on bd.meter_id = m.id
             where st.remaining_centikwh is not null and st.remaining_centikwh < ",
            crate::low_balance_sql!(),
            "
               and not exists (select 1 from message x where x.dedup_key =
                    'low:' || cast(m.id as text) || ':' || cast(coalesce(st.purchase_count, 0) as text)
                        || ':' || cast(bd.student_id as text))
             order by m.id, bd.student_id
             limit $1"
        ))
        .bind(LOW_BALANCE_SCAN_MAX)
        .fetch_all(p)
        .await?
    });
    if due.is_empty() {
        return Ok(0);
    }
    let mut tx = db.begin().await?;
    let mut n = 0;
    let mut days_left = std::collections::HashMap::new();
    for (
        student_id,
        building_zh,
        building_en,
        room,
        meter,
        remaining_centikwh,
        key,
        meter_id,
        purchases,
    ) in due
    {
        let args = MessageArgs::LowBalance {
            place: Place {
                building_zh,
                building_en,
                room,
                meter,
            },
            remaining_centikwh,
        };
        // A concurrent scan may have told this crossing meanwhile: the
        // unique key decides (on conflict do nothing).
        if message::insert_in(&mut tx, student_id, &args, Some(&key), now_ms).await? {
            n += 1;
            let days = match days_left.get(&meter_id) {
                Some(d) => *d,
                None => {
                    let d = days_left_in(&mut tx, meter_id, remaining_centikwh).await?;
                    days_left.insert(meter_id, d);
                    d
                }
            };
            let wx = OutboxArgs {
                message: args,
                days_left: days,
                paid_by_other: None,
            };
            // One event per crossing (the purchase count names it), one row per binder.
            let event = format!("low:{meter_id}:{purchases}");
            wechat_outbox::enqueue_in(&mut tx, &event, student_id, &wx, false, now_ms).await?;
        }
    }
    tx.commit().await?;
    Ok(n)
}
