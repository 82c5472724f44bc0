//! The exceptions queue and staff refunds (issue 13 items 4–6), on SQLite
//! and — with `DORMWATT_TEST_PG_URL` — PostgreSQL at READ COMMITTED: each
//! kind of flag reaches the queue in the transaction that finds it, a
//! refund is refused while the energy may be on the meter, two staff
//! refunding (or resolving) one order at once change it once, a counter
//! refund is cash out of `counter_cash`, and the ledger checks after each.

mod common;

use common::{
    NOW, audit_actions, audit_rows, counter_sale, ledger_ok, paid, seeded, staff, winners,
};
use domain::OrderId;
use domain::order::OrderState;
use store::exceptions::{self, ActionError, Refusal};
use store::orders;
use store::story::{OrderSearch, Reach};
use store::{Db, jobs, ledger};

/// Everything, as an administrator of every area sees it.
const ALL: Reach = Reach {
    operator_id: 0,
    all_areas: true,
    buildings_only: false,
};

/// A paid order the meter refused (count 0 < seq 1): number given back.
async fn refused(db: &Db, address: &str, tx_id: &str) -> orders::Order {
    let a = paid(db, address, 5, tx_id, NOW).await;
    meter_refuses(db, &a, "w#1", [NOW + 10, NOW + 20, NOW + 30]).await;
    orders::by_id(db, a.id).await.unwrap().unwrap()
}

/// `worker` claims the next delivery job, numbers order `o` and the meter
/// refuses it (count = seq − 1), at the three instants of `at`.
async fn meter_refuses(db: &Db, o: &orders::Order, worker: &str, at: [i64; 3]) {
    store::testing::meter_refuses(db, o, worker, at, "hoarding limit")
        .await
        .unwrap();
}

/// Claims the next delivery job at `at`, numbers order `o` (at + 1) and
/// flags a purchase-count gap (at + 2); the job claimed.
async fn seq_gap(db: &Db, o: &orders::Order, at: i64) -> jobs::Job {
    let job = jobs::claim(db, orders::DELIVER_QUEUE, "w#1", at, 30_000, 1)
        .await
        .unwrap();
    orders::assign_purchase_seq(db, o.id, at + 1).await.unwrap();
    store::meters::flag_delivery(
        db,
        o.id,
        &job[0],
        o.meter_id,
        "seq_gap",
        "count 3, seq 1",
        at + 2,
    )
    .await
    .unwrap();
    job.into_iter().next().unwrap()
}

fn kinds(q: &[exceptions::Exception], id: OrderId) -> Vec<String> {
    q.iter()
        .find(|e| e.hit.order.id == id)
        .map(|e| e.flags.iter().map(|f| f.kind.clone()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_queue_shows_each_kind_with_its_reason() {
    for db in seeded().await {
        // Refused by the meter.
        let r = refused(&db, "201701010001", "wx-1").await;
        // A purchase-count gap (number kept).
        let g = paid(&db, "201701010002", 5, "wx-2", NOW).await;
        let job = seq_gap(&db, &g, NOW + 40).await;
        assert_eq!(
            job.dedup_key.as_deref(),
            Some(&*format!("deliver:{}", g.id))
        );
        // Overdue (never delivered within the window).
        let d = paid(&db, "201701010003", 5, "wx-3", NOW + 50).await;
        assert_eq!(
            orders::mark_overdue(&db, 60_000, NOW + 50 + 60_001)
                .await
                .unwrap(),
            1
        );
        // A refund WeChat closed.
        let f = paid(&db, "201701010004", 5, "wx-4", NOW).await;
        orders::mark_overdue(&db, 1, NOW + 200_000).await.unwrap();
        let rf = orders::request_refund(&db, f.id, NOW + 200_001)
            .await
            .unwrap();
        orders::finish_refund(&db, rf.refund_no.as_deref().unwrap(), false, NOW + 200_002)
            .await
            .unwrap();
        // A trade-bill difference and an abnormal refund (raised by workers).
        let b = paid(&db, "201701010005", 5, "wx-5", NOW).await;
        assert!(
            exceptions::raise(
                &db,
                b.id,
                exceptions::RECONCILIATION,
                "amount: 100 vs 200",
                NOW
            )
            .await
            .unwrap()
        );
        assert!(
            !exceptions::raise(&db, b.id, exceptions::RECONCILIATION, "again", NOW + 1)
                .await
                .unwrap(),
            "once while open"
        );

        let q = exceptions::open(&db, &ALL, 100).await.unwrap();
        assert_eq!(
            kinds(&q, r.id),
            vec!["recharge_refused"],
            "{:?}",
            db.backend()
        );
        let refusal = &q.iter().find(|e| e.hit.order.id == r.id).unwrap().flags[0];
        assert!(refusal.detail.contains("hoarding limit"), "{refusal:?}");
        assert_eq!(kinds(&q, g.id), vec!["seq_gap"]);
        assert_eq!(kinds(&q, d.id), vec!["delayed"]);
        // f was delayed (window), then its refund failed: both reasons.
        assert_eq!(kinds(&q, f.id), vec!["delayed", "refund_failed"]);
        assert_eq!(kinds(&q, b.id), vec!["reconciliation"]);
        assert_eq!(exceptions::exceptions_count(&db, &ALL).await.unwrap(), 5);
        // What the queue offers: the refused one is refundable, the gap not.
        let ex = |id| q.iter().find(|e| e.hit.order.id == id).unwrap();
        assert_eq!(ex(r.id).refund_refused(), None);
        assert!(ex(r.id).can_redeliver());
        assert_eq!(ex(g.id).refund_refused(), Some(Refusal::OnMeter(1)));
        let (n, oldest) = exceptions::oldest_paid_undelivered(&db).await.unwrap();
        assert!(n >= 4, "{n}");
        assert!(oldest.is_some());
        // A building manager of another building sees none of them.
        ledger_ok(&db).await;
    }
}

#[tokio::test]
async fn a_refund_is_refused_while_the_energy_may_be_on_the_meter_and_changes_nothing() {
    for db in seeded().await {
        let g = paid(&db, "201701010002", 5, "wx-g", NOW).await;
        seq_gap(&db, &g, NOW + 10).await;
        let before = orders::by_id(&db, g.id).await.unwrap().unwrap();
        let audit_before = audit_actions(&db).await.len();
        let e = exceptions::refund(&db, g.id, &staff("admin"), NOW + 20)
            .await
            .unwrap_err();
        assert!(
            matches!(e, ActionError::Refused(Refusal::OnMeter(1))),
            "{e:?}"
        );
        assert!(e.to_string().contains("may already be on the meter"), "{e}");
        assert_eq!(orders::by_id(&db, g.id).await.unwrap().unwrap(), before);
        let audit_after = audit_actions(&db).await.len();
        assert_eq!(audit_before, audit_after, "nothing recorded");
        // A completed order: refused with its state.
        let c = paid(&db, "201701010006", 5, "wx-c", NOW).await;
        let mut tx = db.begin().await.unwrap();
        // Complete it the way the head-end does (order + ledger).
        orders::mark_delivered(&mut tx, c.id, NOW + 5)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let e = exceptions::refund(&db, c.id, &staff("admin"), NOW + 20)
            .await
            .unwrap_err();
        assert!(
            matches!(e, ActionError::Refused(Refusal::NotDelayed("completed"))),
            "{e:?}"
        );
        let e = exceptions::redeliver(&db, c.id, &staff("admin"), NOW + 20)
            .await
            .unwrap_err();
        assert!(
            matches!(e, ActionError::Refused(Refusal::NotDelayed("completed"))),
            "{e:?}"
        );
    }
}

#[tokio::test]
async fn two_staff_refunding_one_order_at_once_refund_it_once() {
    for db in seeded().await {
        let r = refused(&db, "201701010007", "wx-r").await;
        let won = winners(
            &db,
            8,
            |db, i| async move {
                exceptions::refund(&db, r.id, &staff(&format!("s{i}")), NOW + 100 + i).await
            },
            |e| {
                matches!(
                    e,
                    ActionError::Refused(Refusal::NotDelayed("refunding") | Refusal::InProgress)
                )
            },
        )
        .await;
        for o in &won {
            assert_eq!(o.state, OrderState::Refunding);
        }
        assert_eq!(won.len(), 1, "{:?}", db.backend());
        let rows = audit_rows(&db, "order_refund_requested").await;
        assert_eq!(rows.len(), 1);
        assert!(
            rows[0]
                .before_json
                .as_deref()
                .unwrap()
                .contains("\"delayed\""),
            "{rows:?}"
        );
        assert!(
            rows[0]
                .after_json
                .as_deref()
                .unwrap()
                .contains("\"refunding\"")
        );
        // The queue no longer holds it; finishing writes the ledger once.
        let q = exceptions::open(&db, &ALL, 100).await.unwrap();
        assert!(kinds(&q, r.id).is_empty());
        let o = orders::by_id(&db, r.id).await.unwrap().unwrap();
        orders::finish_refund(&db, o.refund_no.as_deref().unwrap(), true, NOW + 200)
            .await
            .unwrap();
        assert_eq!(
            ledger::balance(&db, "refunds", "fen").await.unwrap(),
            o.amount_fen.get()
        );
        ledger_ok(&db).await;
    }
}

#[tokio::test]
async fn resolving_twice_at_once_resolves_once() {
    for db in seeded().await {
        let r = refused(&db, "201701010008", "wx-s").await;
        let e = exceptions::resolve(&db, r.id, &staff("a"), "  ", NOW + 40)
            .await
            .unwrap_err();
        assert!(matches!(e, ActionError::Refused(Refusal::NoteMissing)));
        let e = exceptions::resolve(&db, r.id, &staff("a"), &"x".repeat(501), NOW + 40)
            .await
            .unwrap_err();
        assert!(matches!(e, ActionError::Refused(Refusal::NoteTooLong)));
        let won = winners(
            &db,
            6,
            |db, i| async move {
                let who = staff(&format!("s{i}"));
                exceptions::resolve(&db, r.id, &who, "called the student", NOW + 50 + i).await
            },
            |e| matches!(e, ActionError::Refused(Refusal::AlreadyResolved)),
        )
        .await;
        for n in &won {
            assert_eq!(*n, 1);
        }
        assert_eq!(won.len(), 1, "{:?}", db.backend());
        let flags = exceptions::flags_of(&db, r.id).await.unwrap();
        assert_eq!(flags.len(), 1);
        assert_eq!(flags[0].resolution.as_deref(), Some("noted"));
        assert_eq!(flags[0].note.as_deref(), Some("called the student"));
        assert_eq!(exceptions::exceptions_count(&db, &ALL).await.unwrap(), 0);
        // Still delayed and refundable: resolving changes no money.
        assert_eq!(
            orders::by_id(&db, r.id).await.unwrap().unwrap().state,
            OrderState::Delayed
        );
    }
}

#[tokio::test]
async fn redelivery_reopens_the_job_and_a_second_refusal_flags_again() {
    for db in seeded().await {
        let r = refused(&db, "201701010009", "wx-t").await;
        exceptions::redeliver(&db, r.id, &staff("admin"), NOW + 100)
            .await
            .unwrap();
        let e = exceptions::redeliver(&db, r.id, &staff("admin"), NOW + 101)
            .await
            .unwrap_err();
        assert!(
            matches!(e, ActionError::Refused(Refusal::StillDelivering)),
            "{e:?}"
        );
        assert_eq!(exceptions::exceptions_count(&db, &ALL).await.unwrap(), 0);
        meter_refuses(&db, &r, "w#2", [NOW + 200, NOW + 201, NOW + 202]).await;
        let flags = exceptions::flags_of(&db, r.id).await.unwrap();
        let open: Vec<_> = flags
            .iter()
            .filter(|f| f.resolved_at_ms.is_none())
            .collect();
        assert_eq!((flags.len(), open.len()), (2, 1));
        assert_eq!(flags[0].resolution.as_deref(), Some("redelivered"));
    }
}

#[tokio::test]
async fn a_counter_refund_is_cash_out_of_the_counter_and_the_ledger_checks() {
    for db in seeded().await {
        let o = counter_sale(&db, "201701010010", 3, "cashier").await;
        assert_eq!(
            ledger::balance(&db, "counter_cash", "fen").await.unwrap(),
            -o.amount_fen.get()
        );
        orders::mark_overdue(&db, 1, NOW + 10_000).await.unwrap();
        let r = exceptions::refund(&db, o.id, &staff("admin"), NOW + 10_001)
            .await
            .unwrap();
        assert_eq!(r.state, OrderState::Refunding);
        let by = exceptions::refunds_by(&db, "admin", NOW, NOW + 20_000)
            .await
            .unwrap();
        assert_eq!(by.len(), 1);
        assert_eq!(
            (by[0].channel.as_str(), by[0].amount_fen),
            ("counter", o.amount_fen.get())
        );
        orders::finish_refund(&db, r.refund_no.as_deref().unwrap(), true, NOW + 10_002)
            .await
            .unwrap();
        assert_eq!(
            ledger::balance(&db, "counter_cash", "fen").await.unwrap(),
            0,
            "the cash went back"
        );
        assert_eq!(ledger::balance(&db, "refunds", "fen").await.unwrap(), 0);
        ledger_ok(&db).await;
    }
}

#[tokio::test]
async fn search_filters_and_the_story_in_time_order() {
    for db in seeded().await {
        let a = paid(&db, "201701010011", 5, "wx-story", NOW).await;
        let b = paid(&db, "201701010012", 5, "wx-other", NOW + 5).await;
        let by = |q: OrderSearch| {
            let db = db.clone();
            async move {
                store::story::search(&db, &OrderSearch { limit: 50, ..q }, &ALL)
                    .await
                    .unwrap()
            }
        };
        let ids = |h: Vec<store::story::Hit>| h.into_iter().map(|h| h.order.id).collect::<Vec<_>>();
        let one = [
            (
                OrderSearch {
                    out_trade_no: Some(a.out_trade_no.clone()),
                    ..Default::default()
                },
                a.id,
            ),
            (
                OrderSearch {
                    transaction_id: Some("wx-other".into()),
                    ..Default::default()
                },
                b.id,
            ),
            (
                OrderSearch {
                    meter: Some("201701010011".into()),
                    ..Default::default()
                },
                a.id,
            ),
            (
                OrderSearch {
                    from_ms: Some(NOW + 1),
                    ..Default::default()
                },
                b.id,
            ),
            (
                OrderSearch {
                    until_ms: Some(NOW + 1),
                    ..Default::default()
                },
                a.id,
            ),
        ];
        for (q, want) in one {
            let what = format!("{q:?}");
            assert_eq!(ids(by(q).await), vec![want], "{what}");
        }
        assert!(
            by(OrderSearch {
                state: Some(OrderState::Completed),
                ..Default::default()
            })
            .await
            .is_empty()
        );
        assert_eq!(
            by(OrderSearch {
                state: Some(OrderState::Charging),
                ..Default::default()
            })
            .await
            .len(),
            2
        );
        let page2 = by(OrderSearch {
            offset: 1,
            limit: 1,
            ..Default::default()
        })
        .await;
        assert_eq!(ids(page2), vec![a.id], "newest first, paged");
        // An operator limited to an area that has none of them sees nothing.
        let s = store::story::story(&db, a.id, &ALL).await.unwrap().unwrap();
        let whats: Vec<_> = s.events.iter().map(|e| e.what.as_str()).collect();
        assert!(whats.starts_with(&["created", "paid"]), "{whats:?}");
        assert!(
            whats.contains(&"payment_received") && whats.contains(&"energy_issued"),
            "{whats:?}"
        );
        assert_eq!(s.ledger.len(), 2);
        assert!(s.events.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
    }
}

async fn binders(db: &Db, address: &str) -> i64 {
    store::on_db!(db, |p| sqlx::query_scalar::<_, i64>(
        "select count(*) from binding b join meter m on m.id = b.meter_id where m.address = $1"
    )
    .bind(address)
    .fetch_one(p)
    .await)
    .unwrap()
}

#[tokio::test]
async fn a_move_out_ends_the_bindings_keeps_the_energy_and_happens_once() {
    for db in seeded().await {
        let address = "201701010013";
        for name in ["leaver-a", "leaver-b"] {
            let s = store::students::create_demo(&db, name, NOW).await.unwrap();
            store::on_db!(&db, |p| sqlx::query(
                "insert into binding (student_id, meter_id, is_default, created_at_ms)
                 select $1, id, true, $2 from meter where address = $3"
            )
            .bind(s.id)
            .bind(NOW)
            .bind(address)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))
            .unwrap();
        }
        let e = store::moveout::settle(&db, address, &staff("admin"), " ", NOW)
            .await
            .unwrap_err();
        assert!(matches!(
            e,
            store::moveout::SettleError::Refused(store::moveout::Refusal::NoteMissing)
        ));
        assert_eq!(binders(&db, address).await, 2, "a refusal changes nothing");
        let won = winners(
            &db,
            4,
            |db, i| async move {
                let who = staff(&format!("s{i}"));
                store::moveout::settle(&db, address, &who, "room 113 moved out", NOW + i).await
            },
            |e| {
                matches!(
                    e,
                    store::moveout::SettleError::Refused(store::moveout::Refusal::NobodyBound)
                )
            },
        )
        .await;
        for s in &won {
            assert_eq!(s.unbound_students, 2);
        }
        assert_eq!(won.len(), 1, "{:?}", db.backend());
        assert_eq!(binders(&db, address).await, 0);
        let rows = audit_rows(&db, "move_out_settled").await;
        assert_eq!(rows.len(), 1);
        ledger_ok(&db).await;
    }
}

#[tokio::test]
async fn two_staff_delivering_one_order_again_at_once_restart_it_once() {
    for db in seeded().await {
        let r = refused(&db, "201701010014", "wx-u").await;
        let won = winners(
            &db,
            6,
            |db, i| async move {
                exceptions::redeliver(&db, r.id, &staff(&format!("s{i}")), NOW + 100 + i).await
            },
            |e| matches!(e, ActionError::Refused(Refusal::StillDelivering)),
        )
        .await;
        assert_eq!(won.len(), 1, "{:?}", db.backend());
        let rows = audit_rows(&db, "order_redelivered").await;
        assert_eq!(rows.len(), 1);
    }
}
