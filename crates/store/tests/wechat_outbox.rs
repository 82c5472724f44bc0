//! The WeChat outbox is written with the inbox message it copies (issue
//! 15): one row per (event, recipient), however often the event repeats;
//! the buyer's delivery notice is urgent and a roommate's names the buyer
//! masked; a low-balance notice carries the days left at recent usage.

mod common;

use common::{NOW, exec, req, seeded};
use store::Db;
use store::message::MessageArgs;
use store::orders::{self, PaymentConfirmation};
use store::wechat_outbox::OutboxArgs;

async fn student(db: &Db, openid: &str, name: &str) -> i64 {
    let id: i64 = store::on_db!(db, |p| sqlx::query_scalar(
        "insert into student (openid, name, created_at_ms) values ($1, $2, 0) returning id"
    )
    .bind(openid)
    .bind(name)
    .fetch_one(p)
    .await)
    .unwrap();
    store::on_db!(db, |p| sqlx::query(
        "insert into binding (student_id, meter_id, is_default, created_at_ms) values ($1, 6, true, 0)"
    )
    .bind(id)
    .execute(p)
    .await
    .map(|_| ()))
    .unwrap();
    id
}

/// (student, event_key, urgent, args) of every outbox row, in id order.
async fn outbox(db: &Db) -> Vec<(i64, String, bool, OutboxArgs)> {
    let rows: Vec<(i64, String, bool, String)> = store::on_db!(db, |p| sqlx::query_as(
        "select student_id, event_key, urgent, args from wechat_outbox order by id"
    )
    .fetch_all(p)
    .await)
    .unwrap();
    rows.into_iter()
        .map(|(s, k, u, a)| (s, k, u, serde_json::from_str(&a).unwrap()))
        .collect()
}

#[tokio::test]
async fn a_delivery_enqueues_one_row_per_binder_urgent_for_the_buyer() {
    for db in seeded().await {
        let buyer = student(&db, "o-buyer", "张三").await;
        let roommate = student(&db, "o-roommate", "李四").await;
        let mut r = req("201701010006", 20);
        r.student_id = Some(buyer);
        let o = orders::create(&db, &r, NOW).await.unwrap();
        let conf = PaymentConfirmation {
            out_trade_no: &o.out_trade_no,
            transaction_id: "4200000001",
            amount_fen: o.amount_fen,
        };
        orders::record_payment(&db, &conf, NOW + 1).await.unwrap();
        orders::assign_purchase_seq(&db, o.id, NOW + 2)
            .await
            .unwrap();
        for _ in 0..2 {
            let mut tx = db.begin().await.unwrap();
            orders::mark_delivered(&mut tx, o.id, NOW + 5)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
        let rows = outbox(&db).await;
        assert_eq!(rows.len(), 2, "{rows:?}");
        let event = format!("delivered:{}", o.id.get());
        let of = |s: i64| rows.iter().find(|r| r.0 == s).unwrap();
        let (_, key, urgent, args) = of(buyer);
        assert_eq!((key, *urgent), (&event, true));
        assert_eq!(args.paid_by_other, None);
        assert!(matches!(
            args.message,
            MessageArgs::Delivered { kwh: 20, .. }
        ));
        let (_, key, urgent, args) = of(roommate);
        assert_eq!((key, *urgent), (&event, false));
        assert_eq!(args.paid_by_other.as_deref(), Some("张**"));
    }
}

#[tokio::test]
async fn a_low_balance_row_says_how_many_days_are_left_at_recent_usage() {
    for db in seeded().await {
        let s = student(&db, "o-low", "").await;
        // Five days of 2.00 kWh a day, 4.50 kWh left: 2 days.
        exec(
            &db,
            "insert into daily_usage (meter_id, day, usage_centikwh, total_end_centikwh, status, updated_at_ms)
             values (6, 20780, 200, 1000, 'ok', 0), (6, 20781, 200, 1200, 'ok', 0),
                    (6, 20782, 200, 1400, 'ok', 0), (6, 20783, 200, 1600, 'ok', 0),
                    (6, 20784, 200, 1800, 'ok', 0)
             on conflict (meter_id, day) do update set usage_centikwh = 200, status = 'ok'",
        )
        .await;
        exec(
            &db,
            "update meter_state set remaining_centikwh = 450, purchase_count = 3 where meter_id = 6",
        )
        .await;
        assert_eq!(store::notify::scan_low_balance(&db, NOW).await.unwrap(), 1);
        assert_eq!(
            store::notify::scan_low_balance(&db, NOW + 1).await.unwrap(),
            0
        );
        let rows = outbox(&db).await;
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].0, s);
        assert_eq!(rows[0].1, "low:6:3");
        assert!(!rows[0].2);
        assert_eq!(rows[0].3.days_left, Some(2));
    }
}
