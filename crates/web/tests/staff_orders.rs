//! The console's orders, story and exceptions queue over HTTP (issue 13
//! items 4–6), on SQLite and — with `DORMWATT_TEST_PG_URL` — PostgreSQL:
//! search filters and the building manager's reach, the story's ledger
//! rows, a refused refund that changes nothing, a refund of a refused
//! order from the queue, and the auditor's read-only view.

mod common;

use common::staff::{bound_student, each_db, first_meter, paid, redirects_to};
use domain::staff::Role;
use reqwest::StatusCode;
use reqwest::header::LOCATION;

#[tokio::test]
async fn search_filters_work_and_a_building_manager_sees_only_their_buildings() {
    each_db(async |app| {
        let now = app.clock.now_ms();
        let (m1, building1) = first_meter(&app.db, 1).await;
        let (m2, _) = first_meter(&app.db, 2).await;
        let a = paid(&app.db, 1, &m1, "wx-here", now).await;
        let b = paid(&app.db, 2, &m2, "wx-there", now + 5).await;
        app.scoped_operator("manager", Role::BuildingManager, &[], &[&building1])
            .await;
        let admin = app.login("admin").await;
        let (s, html) = app.text(&admin, "/staff/orders").await;
        assert_eq!(s, StatusCode::OK);
        assert!(html.contains(&a.out_trade_no) && html.contains(&b.out_trade_no));
        let (_, html) = app.text(&admin, "/staff/orders?transaction=wx-there").await;
        assert!(
            !html.contains(&a.out_trade_no) && html.contains(&b.out_trade_no),
            "{html}"
        );
        let (_, html) = app.text(&admin, &format!("/staff/orders?meter={m1}")).await;
        assert!(html.contains(&a.out_trade_no) && !html.contains(&b.out_trade_no));
        let (_, html) = app
            .text(&admin, &format!("/staff/orders?no={}", b.out_trade_no))
            .await;
        assert!(!html.contains(&a.out_trade_no) && html.contains(&b.out_trade_no));
        let (_, html) = app.text(&admin, "/staff/orders?state=completed").await;
        assert!(html.contains("id=orders-empty"), "{html}");
        // A bad input: a clear message, no search.
        let (s, html) = app.text(&admin, "/staff/orders?meter=1234").await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(html.contains("电表编号为 12 位数字"), "{html}");
        let (s, _) = app.text(&admin, "/staff/orders?from=2026-13-01").await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        // The manager: only their building's order, and the other's story is 403 + audited.
        let manager = app.login("manager").await;
        let (s, html) = app.text(&manager, "/staff/orders").await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            html.contains(&a.out_trade_no) && !html.contains(&b.out_trade_no),
            "{html}"
        );
        let (s, _) = app.text(&manager, &format!("/staff/orders/{}", a.id)).await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = app.text(&manager, &format!("/staff/orders/{}", b.id)).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let refused = app.audit("forbidden").await;
        assert!(
            refused
                .iter()
                .any(|r| r.operator_name == "manager"
                    && r.subject == format!("/staff/orders/{}", b.id)),
            "{refused:?}"
        );
        // The manager's nav has orders and exceptions; no refund buttons (no ResolveOrders).
        let (s, html) = app.text(&manager, "/staff/exceptions").await;
        assert_eq!(s, StatusCode::OK);
        assert!(html.contains("href=\"/staff/exceptions\""));
    })
    .await;
}

#[tokio::test]
async fn the_story_shows_the_ledger_rows_in_time_order() {
    each_db(async |app| {
        let (_, o) = app.refused_order(1, "wx-story").await;
        let admin = app.login("admin").await;
        let (s, html) = app.text(&admin, &format!("/staff/orders/{}", o.id)).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(html.contains("id=order-ledger"), "{html}");
        for needle in [
            "payment_received",
            "energy_issued",
            "wx_clearing → prepaid",
            "recharge_refused",
            "hoarding limit 500.00 kWh",
            "id=order-flagged",
        ] {
            assert!(html.contains(needle), "{needle}: {html}");
        }
        let created = html.find(">created<").expect("created");
        let refusal = html.rfind(">recharge_refused<").expect("refusal");
        assert!(created < refusal, "time order");
        let (s, _) = app.text(&admin, "/staff/orders/999999").await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    })
    .await;
}

#[tokio::test]
async fn refunding_a_completed_order_is_refused_with_its_reason_and_changes_nothing() {
    each_db(async |app| {
        let now = app.clock.now_ms();
        let (m1, _) = first_meter(&app.db, 1).await;
        let o = paid(&app.db, 1, &m1, "wx-done", now).await;
        let mut tx = app.db.begin().await.unwrap();
        store::orders::mark_delivered(&mut tx, o.id, now + 5)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let before = store::orders::by_id(&app.db, o.id).await.unwrap().unwrap();
        let admin = app.login("admin").await;
        let r = app.on_exception(&admin, o.id, "refund", &[]).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = r.text().await.unwrap();
        assert!(
            html.contains("id=exc-error") && html.contains("已完成"),
            "{html}"
        );
        assert_eq!(
            store::orders::by_id(&app.db, o.id).await.unwrap().unwrap(),
            before
        );
        assert!(app.audit("order_refund_requested").await.is_empty());
        // No refund transfer was written.
        assert_eq!(
            store::ledger::balance(&app.db, "refunds", "fen")
                .await
                .unwrap(),
            0
        );
        // A refused order with a number held (a gap) shows the reason, not the button.
        let (m2, _) = first_meter(&app.db, 2).await;
        let g = paid(&app.db, 2, &m2, "wx-gap", now).await;
        let job = store::jobs::claim(
            &app.db,
            store::orders::DELIVER_QUEUE,
            "w#1",
            now + 10,
            30_000,
            1,
        )
        .await
        .unwrap();
        store::orders::assign_purchase_seq(&app.db, g.id, now + 11)
            .await
            .unwrap();
        store::meters::flag_delivery(
            &app.db,
            g.id,
            &job[0],
            g.meter_id,
            "seq_gap",
            "count 3, seq 1",
            now + 12,
        )
        .await
        .unwrap();
        let (_, html) = app.text(&admin, "/staff/exceptions").await;
        assert!(
            html.contains("class=\"muted refund-refused\"") && html.contains("可能已在电表上"),
            "{html}"
        );
        assert!(!html.contains(&format!("/staff/exceptions/{}/refund", g.id)));
        let r = app.on_exception(&admin, g.id, "refund", &[]).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            store::orders::by_id(&app.db, g.id)
                .await
                .unwrap()
                .unwrap()
                .state,
            domain::order::OrderState::Delayed
        );
    })
    .await;
}

#[tokio::test]
async fn a_refused_order_is_refunded_from_the_queue_and_resolved_orders_leave_it() {
    each_db(async |app| {
        let (_, o) = app.refused_order(1, "wx-r").await;
        let (_, p) = app.refused_order(2, "wx-p").await;
        let admin = app.login("admin").await;
        let (_, html) = app.text(&admin, "/staff/exceptions").await;
        assert!(
            html.contains(&o.out_trade_no) && html.contains("电表拒绝充值"),
            "{html}"
        );
        let r = app.on_exception(&admin, o.id, "refund", &[]).await;
        assert!(
            redirects_to(&r, "/staff/exceptions?done=refund"),
            "{:?}",
            r.status()
        );
        let after = store::orders::by_id(&app.db, o.id).await.unwrap().unwrap();
        assert_eq!(after.state, domain::order::OrderState::Refunding);
        let rows = app.audit("order_refund_requested").await;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].operator_name, "admin");
        assert_eq!(rows[0].subject, format!("order:{}", o.out_trade_no));
        // A second press: refused with the state, one refund.
        let r = app.on_exception(&admin, o.id, "refund", &[]).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(app.audit("order_refund_requested").await.len(), 1);
        // Resolve with a note: empty refused, then done once.
        let r = app
            .on_exception(&admin, p.id, "resolve", &[("note", " ")])
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let r = app
            .on_exception(
                &admin,
                p.id,
                "resolve",
                &[("note", "student will buy less")],
            )
            .await;
        assert!(redirects_to(&r, "/staff/exceptions?done=resolve"));
        let (_, html) = app.text(&admin, "/staff/exceptions").await;
        assert!(html.contains("id=exc-empty"), "{html}");
        assert_eq!(app.audit("order_flags_resolved").await.len(), 1);
    })
    .await;
}

#[tokio::test]
async fn an_auditor_sees_the_queue_without_buttons_and_its_posts_get_403() {
    each_db(async |app| {
        let (_, o) = app.refused_order(1, "wx-a").await;
        let auditor = app.login("auditor").await;
        let (s, html) = app.text(&auditor, "/staff/exceptions").await;
        assert_eq!(s, StatusCode::OK);
        assert!(html.contains(&o.out_trade_no));
        assert!(
            !html.contains("/refund\"")
                && !html.contains("/redeliver\"")
                && !html.contains("/resolve\""),
            "{html}"
        );
        for action in ["refund", "redeliver", "resolve"] {
            let r = app
                .on_exception(&auditor, o.id, action, &[("note", "x")])
                .await;
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{action}");
        }
        assert_eq!(
            store::orders::by_id(&app.db, o.id)
                .await
                .unwrap()
                .unwrap()
                .state,
            domain::order::OrderState::Delayed
        );
        let refused = app.audit("forbidden").await;
        assert_eq!(
            refused
                .iter()
                .filter(|r| r.operator_name == "auditor")
                .count(),
            3
        );
        // A cashier may not resolve orders either.
        let cashier = app.login("cashier").await;
        let r = app.on_exception(&cashier, o.id, "refund", &[]).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    })
    .await;
}

#[tokio::test]
async fn an_administrator_settles_a_move_out_and_others_may_not() {
    each_db(async |app| {
        let (m1, _) = first_meter(&app.db, 1).await;
        let s = bound_student(&app.db, "leaver", &m1, app.clock.now_ms()).await;
        let auditor = app.login("auditor").await;
        let (st, _) = app.text(&auditor, "/staff/move-out").await;
        assert_eq!(st, StatusCode::FORBIDDEN);
        let r = app.move_out(&auditor, &m1, "x").await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let admin = app.login("admin").await;
        let r = app.move_out(&admin, "12345", "x").await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let r = app.move_out(&admin, &m1, "").await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            store::students::bindings(&app.db, s.id)
                .await
                .unwrap()
                .len(),
            1
        );
        let r = app.move_out(&admin, &m1, "moved out 2026-12-02").await;
        assert!(
            redirects_to(&r, "/staff/move-out?meter="),
            "{:?}",
            r.status()
        );
        let loc = r.headers()[LOCATION].to_str().unwrap().to_owned();
        let (_, html) = app.text(&admin, &loc).await;
        assert!(
            html.contains("id=moveout-notice") && html.contains("解除 1 个绑定"),
            "{html}"
        );
        assert!(
            store::students::bindings(&app.db, s.id)
                .await
                .unwrap()
                .is_empty()
        );
        let r = app.move_out(&admin, &m1, "again").await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(app.audit("move_out_settled").await.len(), 1);
    })
    .await;
}
