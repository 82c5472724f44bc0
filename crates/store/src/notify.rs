//! Inbox notifications that follow from meter events (S15): "your purchase
//! has reached the meter" and "remaining energy is low". Every message has a
//! dedup key, so a repeated event never notifies twice (I9). WeChat
//! template messages for followers are a later addition (ROADMAP); the
//! inbox always gets the message.

use crate::{Db, Result, Tx, on_db, on_tx};

/// Writes "delivered" messages for an order, in the transaction that
/// completes it: to the buyer and to every student bound to the meter.
pub async fn delivered_in(tx: &mut Tx, order_id: i64, now_ms: i64) -> Result<u64> {
    let n = on_tx!(tx, |c| {
        sqlx::query(
        "insert into message (student_id, kind, title, body, dedup_key, created_at_ms)
         select s.student_id, 'delivered', '购电已到账 · Purchase delivered',
                b.name_zh || r.number || ' 电表已收到 ' || cast(o.kwh as text) || ' kWh（订单 ' || o.out_trade_no
                    || '）。 The meter of room ' || r.number || ' received ' || cast(o.kwh as text) || ' kWh.',
                'delivered:' || cast(o.id as text) || ':' || cast(s.student_id as text), $2
         from orders o
         join meter m on m.id = o.meter_id
         join room r on r.id = m.room_id
         join building b on b.id = r.building_id
         join (select student_id, meter_id from binding
               union select student_id, meter_id from orders where id = $1 and student_id is not null) s
           on s.meter_id = o.meter_id
         where o.id = $1
         on conflict (dedup_key) do nothing"
    )
    .bind(order_id)
    .bind(now_ms)
    .execute(c)
    .await?
    .rows_affected()
    });
    Ok(n)
}

/// Sends a low-balance message to every student bound to a meter whose last
/// read remaining energy is below its threshold — once per crossing: the
/// key includes the meter's purchase count, which a recharge advances, so
/// the next crossing (after the next purchase) notifies again.
pub async fn scan_low_balance(db: &Db, now_ms: i64) -> Result<u64> {
    Ok(on_db!(db, |p| {
        sqlx::query(
        "insert into message (student_id, kind, title, body, dedup_key, created_at_ms)
         select bd.student_id, 'low_balance', '电量不足提醒 · Low balance',
                b.name_zh || r.number || ' 电表剩余 ' || cast(st.remaining_centikwh / 100 as text) || '.'
                    || substr('0' || cast(abs(st.remaining_centikwh) % 100 as text), -2, 2)
                    || ' kWh，请及时购电。 Room ' || r.number || ' has '
                    || cast(st.remaining_centikwh / 100 as text) || ' kWh left; please buy more soon.',
                'low:' || cast(m.id as text) || ':' || cast(coalesce(st.purchase_count, 0) as text) || ':'
                    || cast(bd.student_id as text),
                $1
         from meter_state st
         join meter m on m.id = st.meter_id
         join room r on r.id = m.room_id
         join building b on b.id = r.building_id
         join binding bd on bd.meter_id = m.id
         where st.remaining_centikwh is not null and st.remaining_centikwh < m.low_balance_centikwh
         on conflict (dedup_key) do nothing"
    )
    .bind(now_ms)
    .execute(p)
    .await?
    .rows_affected()
    }))
}
