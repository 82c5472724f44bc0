//! Inbox notifications that follow from meter events (S15): "your purchase
//! has reached the meter" and "remaining energy is low". Every message has a
//! dedup key, so a repeated event never notifies twice (I9). Messages are
//! stored as [`MessageArgs`] (kind + arguments naming the meter's building,
//! room and number) and rendered in the reader's language when read. WeChat
//! template messages for followers are a later addition (ROADMAP); the
//! inbox always gets the message.

use crate::message::{self, MessageArgs, Place};
use crate::{Db, Result, Tx, on_db, on_tx};

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
    let order: Option<(i64, String)> = on_tx!(tx, |c| sqlx::query_as(
        "select kwh, out_trade_no from orders where id = $1"
    )
    .bind(order_id)
    .fetch_optional(c)
    .await?);
    let Some((kwh, out_trade_no)) = order else {
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
    let due: Vec<(i64, String, String, String, String, i64, String)> = on_db!(db, |p| {
        sqlx::query_as(concat!(
            "select bd.student_id, b.name_zh, b.name_en, r.number, m.address, st.remaining_centikwh,
                    'low:' || cast(m.id as text) || ':' || cast(coalesce(st.purchase_count, 0) as text)
                        || ':' || cast(bd.student_id as text) as dedup_key
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
    for (student_id, building_zh, building_en, room, meter, remaining_centikwh, key) in due {
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
        }
    }
    tx.commit().await?;
    Ok(n)
}
