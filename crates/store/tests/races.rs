//! Money safety under concurrency (issue 9): every test runs on SQLite and,
//! when `DORMWATT_TEST_PG_URL` is set, on PostgreSQL at READ COMMITTED,
//! where two processes really can run the same statement at once.

mod common;

use common::{NOW, at_once, paid, req, seeded};
use domain::MeterId;
use domain::order::OrderState;
use store::orders::{self, PaymentConfirmation};
use store::{Db, jobs, ledger};

#[tokio::test]
async fn two_workers_assigning_one_order_get_one_number() {
    for db in seeded().await {
        let o = paid(&db, "201701010001", 5, "wx-a", NOW).await;
        let seqs: Vec<_> = at_once(&db, 12, |db, i| async move {
            orders::assign_purchase_seq(&db, o.id, NOW + 10 + i).await
        })
        .await
        .into_iter()
        .map(|a| a.unwrap().seq())
        .collect();
        assert!(
            seqs.iter().all(|s| *s == Some(1)),
            "{:?}: {seqs:?}",
            db.backend()
        );
        let m = meter_row(&db, o.meter_id).await;
        assert_eq!(m, 1, "the meter's last number");
        let o = orders::by_id(&db, o.id).await.unwrap().unwrap();
        assert_eq!(o.purchase_seq, Some(1));
    }
}

#[tokio::test]
async fn a_refunded_order_never_gets_a_purchase_number() {
    for db in seeded().await {
        let o = paid(&db, "201701010002", 5, "wx-b", NOW).await;
        orders::mark_overdue(&db, 1000, NOW + 5000).await.unwrap();
        let r = orders::request_refund(&db, o.id, NOW + 5001).await.unwrap();
        assert_eq!(r.state, OrderState::Refunding);
        // The delivery worker read the order as delayed before the refund and
        // now assigns: it must be refused.
        let a = orders::assign_purchase_seq(&db, o.id, NOW + 5002).await;
        assert!(
            matches!(a, Ok(orders::Assignment::NotDeliverable(s)) if s == Some(OrderState::Refunding)),
            "{:?}: assigned {a:?} to a refunding order",
            db.backend()
        );
        assert_eq!(meter_row(&db, o.meter_id).await, 0, "no number used");
    }
}

#[tokio::test]
async fn concurrent_refund_successes_credit_once() {
    for db in seeded().await {
        let o = paid(&db, "201701010003", 5, "wx-c", NOW).await;
        orders::mark_overdue(&db, 1000, NOW + 5000).await.unwrap();
        let r = orders::request_refund(&db, o.id, NOW + 5001).await.unwrap();
        let no = r.refund_no.unwrap();
        let done = at_once(&db, 8, |db, i| {
            let no = no.clone();
            async move { orders::finish_refund(&db, &no, true, NOW + 6000 + i).await }
        })
        .await;
        for o in done {
            assert!(o.is_ok(), "{:?}: {o:?}", db.backend());
        }
        assert_eq!(
            ledger::balance(&db, "refunds", "fen").await.unwrap(),
            o.amount_fen.get()
        );
        assert!(ledger::check(&db).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn a_failed_refund_goes_back_to_delivery() {
    for db in seeded().await {
        let o = paid(&db, "201701010004", 5, "wx-d", NOW).await;
        orders::mark_overdue(&db, 1000, NOW + 5000).await.unwrap();
        let r = orders::request_refund(&db, o.id, NOW + 5001).await.unwrap();
        let back = orders::finish_refund(&db, r.refund_no.as_deref().unwrap(), false, NOW + 6000)
            .await
            .unwrap();
        assert_eq!(back.state, OrderState::Delayed);
        let claimed = jobs::claim(&db, orders::DELIVER_QUEUE, "w", NOW + 7000, 60_000, 10)
            .await
            .unwrap();
        assert_eq!(
            claimed.len(),
            1,
            "{:?}: nothing will ever deliver it",
            db.backend()
        );
    }
}

#[tokio::test]
async fn unpaid_orders_count_against_the_hoarding_limit() {
    for db in seeded().await {
        let m = meter(&db, "201701010005").await;
        assert_eq!(
            m.hoard_limit_centikwh.get(),
            50_000,
            "the meter's own limit (500 kWh)"
        );
        orders::create(&db, &req("201701010005", 400), NOW)
            .await
            .unwrap();
        let e = orders::create(&db, &req("201701010005", 200), NOW + 1).await;
        assert!(
            matches!(e, Err(orders::CreateError::HoardingLimit { .. })),
            "{:?}: {e:?}",
            db.backend()
        );
    }
}

#[tokio::test]
async fn no_new_number_while_a_sibling_holds_an_unresolved_one() {
    for db in seeded().await {
        // A created first, B second; B is paid and starts delivering first.
        let a = orders::create(&db, &req("201701010006", 2), NOW)
            .await
            .unwrap();
        let b = paid(&db, "201701010006", 3, "wx-f", NOW + 10).await;
        let seq_b = orders::assign_purchase_seq(&db, b.id, NOW + 20)
            .await
            .unwrap();
        assert_eq!(seq_b.seq(), Some(1));
        let conf = PaymentConfirmation {
            out_trade_no: &a.out_trade_no,
            transaction_id: "wx-e",
            amount_fen: a.amount_fen,
        };
        orders::record_payment(&db, &conf, NOW + 30).await.unwrap();
        // B's outcome is unknown: A must wait for it, not take number 2.
        let a_seq = orders::assign_purchase_seq(&db, a.id, NOW + 40).await;
        assert!(
            matches!(a_seq, Ok(orders::Assignment::Wait(_))),
            "{:?}: A got {a_seq:?} while B holds 1",
            db.backend()
        );
    }
}

#[tokio::test]
async fn a_stale_worker_cannot_complete_a_job_another_worker_owns() {
    for db in seeded().await {
        let o = paid(&db, "201701010007", 2, "wx-g", NOW).await;
        let w1 = jobs::claim(&db, orders::DELIVER_QUEUE, "w1", NOW + 100, 10_000, 1)
            .await
            .unwrap();
        assert_eq!(w1.len(), 1);
        // w1 stalls past its lease; w2 takes the job.
        let w2 = jobs::claim(&db, orders::DELIVER_QUEUE, "w2", NOW + 20_000, 10_000, 1)
            .await
            .unwrap();
        assert_eq!(w2.len(), 1);
        let mut tx = db.begin().await.unwrap();
        let r = jobs::complete(&mut tx, &w1[0], NOW + 20_001).await;
        drop(tx);
        assert!(
            matches!(r, Err(store::Error::LeaseLost(_))),
            "{:?}: the stale worker completed w2's job: {r:?}",
            db.backend()
        );
        // Nor fail, release, renew or deliver it.
        assert!(
            jobs::fail(&db, &w1[0], "x", NOW + 20_002, 60_000)
                .await
                .is_err()
        );
        assert!(jobs::release(&db, &w1[0], NOW, NOW + 20_002).await.is_err());
        assert!(
            jobs::heartbeat(&db, &w1[0], NOW + 20_002, 10_000)
                .await
                .is_err()
        );
        let seq = orders::assign_purchase_seq(&db, o.id, NOW + 20_003)
            .await
            .unwrap();
        let ev = store::meters::DeliveryEvidence {
            purchase_count: seq.seq().unwrap(),
            remaining_centikwh: None,
        };
        let r =
            store::meters::complete_delivery(&db, o.id, &w1[0], o.meter_id, ev, NOW + 20_004).await;
        assert!(matches!(r, Err(store::Error::LeaseLost(_))), "{r:?}");
        assert_eq!(
            orders::by_id(&db, o.id).await.unwrap().unwrap().state,
            OrderState::Charging
        );
        // The owner renews, then completes.
        jobs::heartbeat(&db, &w2[0], NOW + 25_000, 10_000)
            .await
            .unwrap();
        let none = jobs::claim(&db, orders::DELIVER_QUEUE, "w3", NOW + 31_000, 10_000, 1)
            .await
            .unwrap();
        assert!(none.is_empty(), "renewed lease holds");
        assert!(
            store::meters::complete_delivery(&db, o.id, &w2[0], o.meter_id, ev, NOW + 31_001)
                .await
                .unwrap()
        );
        assert!(ledger::check(&db).await.unwrap().is_empty());
    }
}

/// Meter `address` of area 1.
async fn meter(db: &Db, address: &str) -> store::campus::MeterInfo {
    let address = domain::MeterAddress::parse(address).expect("address");
    store::campus::meter_by_address(db, domain::AreaId::new(1), &address)
        .await
        .unwrap()
        .unwrap()
}

async fn meter_row(db: &Db, meter_id: MeterId) -> i64 {
    store::on_db!(db, |p| sqlx::query_scalar::<_, i64>(
        "select purchase_seq_last from meter where id = $1"
    )
    .bind(meter_id.get())
    .fetch_one(p)
    .await)
    .unwrap()
}

#[tokio::test]
async fn a_refused_recharge_gives_its_number_back_and_blocks_nothing() {
    for db in seeded().await {
        let a = paid(&db, "201701010008", 5, "wx-h", NOW).await;
        let job = jobs::claim(&db, orders::DELIVER_QUEUE, "w#1", NOW + 10, 30_000, 1)
            .await
            .unwrap();
        let seq = orders::assign_purchase_seq(&db, a.id, NOW + 20)
            .await
            .unwrap()
            .seq()
            .unwrap();
        assert_eq!(seq, 1);
        // The meter refused it and reads back count 0: not applied.
        store::meters::refuse_delivery(
            &db,
            a.id,
            &job[0],
            a.meter_id,
            seq,
            0,
            "hoarding limit",
            NOW + 30,
        )
        .await
        .unwrap();
        let a2 = orders::by_id(&db, a.id).await.unwrap().unwrap();
        assert_eq!((a2.state.as_str(), a2.purchase_seq), ("delayed", None));
        assert_eq!(meter_row(&db, a.meter_id).await, 0);
        // A later purchase on the meter takes number 1, not 2 (no gap).
        let b = paid(&db, "201701010008", 2, "wx-i", NOW + 100).await;
        assert_eq!(
            orders::assign_purchase_seq(&db, b.id, NOW + 110)
                .await
                .unwrap()
                .seq(),
            Some(1)
        );
        // The refused one is refundable (no frame of it can be applied) …
        let r = orders::request_refund(&db, a.id, NOW + 120).await.unwrap();
        assert_eq!(r.state, OrderState::Refunding);
        orders::finish_refund(&db, r.refund_no.as_deref().unwrap(), true, NOW + 130)
            .await
            .unwrap();
        assert!(
            ledger::check(&db).await.unwrap().is_empty(),
            "{:?}",
            ledger::check(&db).await
        );
    }
}

#[tokio::test]
async fn staff_can_deliver_a_flagged_order_again() {
    for db in seeded().await {
        let a = paid(&db, "201701010009", 5, "wx-j", NOW).await;
        let job = jobs::claim(&db, orders::DELIVER_QUEUE, "w#1", NOW + 10, 30_000, 1)
            .await
            .unwrap();
        store::meters::flag_delivery(
            &db,
            a.id,
            &job[0],
            a.meter_id,
            "seq_gap",
            "count 3, seq 1",
            NOW + 20,
        )
        .await
        .unwrap();
        assert!(
            jobs::claim(&db, orders::DELIVER_QUEUE, "w#1", NOW + 30, 30_000, 1)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(orders::redeliver(&db, a.id, NOW + 40).await.unwrap());
        assert!(
            !orders::redeliver(&db, a.id, NOW + 41).await.unwrap(),
            "only a dead job"
        );
        assert_eq!(
            jobs::claim(&db, orders::DELIVER_QUEUE, "w#1", NOW + 50, 30_000, 1)
                .await
                .unwrap()
                .len(),
            1
        );
    }
}

#[tokio::test]
async fn the_next_purchase_of_a_meter_is_woken_not_failed() {
    for db in seeded().await {
        let a = paid(&db, "201701010010", 1, "wx-k", NOW).await;
        let b = paid(&db, "201701010010", 2, "wx-l", NOW + 5).await;
        let jobs_ = jobs::claim(&db, orders::DELIVER_QUEUE, "w#1", NOW + 10, 30_000, 10)
            .await
            .unwrap();
        assert_eq!(jobs_.len(), 2);
        let (ja, jb) = if jobs_[0]
            .payload
            .contains(&format!("\"order_id\":{},", a.id))
        {
            (&jobs_[0], &jobs_[1])
        } else {
            (&jobs_[1], &jobs_[0])
        };
        // B was paid later: it waits for A (not a failed attempt).
        let w = orders::assign_purchase_seq(&db, b.id, NOW + 20)
            .await
            .unwrap();
        assert!(matches!(w, orders::Assignment::Wait(_)), "{w:?}");
        jobs::wait(&db, jb, "behind A", NOW + 3_600_000, NOW + 21)
            .await
            .unwrap();
        let seq = orders::assign_purchase_seq(&db, a.id, NOW + 30)
            .await
            .unwrap()
            .seq()
            .unwrap();
        let ev = store::meters::DeliveryEvidence {
            purchase_count: seq,
            remaining_centikwh: Some(100),
        };
        assert!(
            store::meters::complete_delivery(&db, a.id, ja, a.meter_id, ev, NOW + 40)
                .await
                .unwrap()
        );
        // A's completion made B due at once.
        let next = jobs::claim(&db, orders::DELIVER_QUEUE, "w#1", NOW + 41, 30_000, 10)
            .await
            .unwrap();
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].id, jb.id);
        assert_eq!(next[0].attempts, 1, "waiting was not counted as a failure");
        assert!(ledger::check(&db).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn a_restarted_node_takes_back_its_dead_incarnations_leases() {
    for db in seeded().await {
        paid(&db, "201701010011", 1, "wx-m", NOW).await;
        paid(&db, "201701010012", 1, "wx-n", NOW).await;
        let held = jobs::claim(&db, orders::DELIVER_QUEUE, "node-a#1", NOW + 10, 60_000, 1)
            .await
            .unwrap();
        let other = jobs::claim(&db, orders::DELIVER_QUEUE, "node-b#1", NOW + 10, 60_000, 1)
            .await
            .unwrap();
        assert_eq!((held.len(), other.len()), (1, 1));
        // node-a restarts as incarnation 2: its old lease is released at
        // once, node-b's is not touched.
        assert_eq!(
            jobs::release_incarnations(&db, "node-a", "node-a#2", NOW + 20)
                .await
                .unwrap(),
            1
        );
        let again = jobs::claim(&db, orders::DELIVER_QUEUE, "node-a#2", NOW + 21, 60_000, 5)
            .await
            .unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].id, held[0].id);
        assert_eq!(again[0].attempts, 1, "the killed attempt is not counted");
        // Shutting down releases what this process holds.
        assert_eq!(
            jobs::release_worker(&db, "node-a#2", NOW + 30)
                .await
                .unwrap(),
            1
        );
        assert!(
            jobs::complete(&mut db.begin().await.unwrap(), &again[0], NOW + 31)
                .await
                .is_err()
        );
    }
}

#[tokio::test]
async fn a_refund_racing_the_start_of_a_delivery_never_both_win() {
    for db in seeded().await {
        let mut both = 0;
        for i in 0..16u64 {
            let address = format!("2017010200{:02}", i + 1);
            let o = paid(&db, &address, 2, &format!("wx-r{i}"), NOW).await;
            orders::mark_overdue(&db, 1000, NOW + 5000).await.unwrap();
            let (r, a) = tokio::join!(
                orders::request_refund(&db, o.id, NOW + 6000),
                orders::assign_purchase_seq(&db, o.id, NOW + 6000)
            );
            if r.is_ok() && matches!(a, Ok(orders::Assignment::Assigned(_))) {
                both += 1;
            }
        }
        assert_eq!(both, 0, "{:?}: refunded and numbered", db.backend());
        let v = ledger::check(&db).await.unwrap();
        assert!(v.is_empty(), "{:?}: {v:?}", db.backend());
    }
}

#[tokio::test]
async fn concurrent_claims_take_each_job_once_and_staff_redeliver_once() {
    for db in seeded().await {
        for i in 0..6u64 {
            paid(
                &db,
                &format!("2017010300{:02}", i + 1),
                1,
                &format!("wx-c{i}"),
                NOW,
            )
            .await;
        }
        let claims = at_once(&db, 4, |db, w| async move {
            let worker = format!("w{w}#1");
            jobs::claim(&db, orders::DELIVER_QUEUE, &worker, NOW + 10, 30_000, 2)
                .await
                .unwrap()
        })
        .await;
        let mut ids = Vec::new();
        for got in claims {
            assert!(
                got.len() <= 2,
                "{:?}: claimed {} with limit 2",
                db.backend(),
                got.len()
            );
            ids.extend(got.into_iter().map(|j| j.id));
        }
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n, "{:?}: a job claimed twice", db.backend());
        // Two staff press "deliver again" on the same flagged order at once.
        let o = paid(&db, "201701030010", 1, "wx-c10", NOW).await;
        let job = jobs::claim(&db, orders::DELIVER_QUEUE, "w9#1", NOW + 20, 30_000, 10)
            .await
            .unwrap();
        let mine = job
            .iter()
            .find(|j| j.payload.contains(&format!("\"order_id\":{},", o.id)))
            .unwrap();
        store::meters::flag_delivery(&db, o.id, mine, o.meter_id, "seq_gap", "test", NOW + 30)
            .await
            .unwrap();
        let (a, b) = tokio::join!(
            orders::redeliver(&db, o.id, NOW + 40),
            orders::redeliver(&db, o.id, NOW + 40)
        );
        assert_eq!(
            u8::from(a.unwrap()) + u8::from(b.unwrap()),
            1,
            "{:?}: exactly one redelivery",
            db.backend()
        );
    }
}

#[tokio::test]
async fn two_binders_changing_the_password_at_once_one_wins() {
    for db in seeded().await {
        let m = meter(&db, "201701040001").await;
        let mut students = Vec::new();
        for who in ["o-pw-a", "o-pw-b"] {
            let s = store::students::upsert_by_openid(&db, who, false, NOW)
                .await
                .unwrap();
            store::on_db!(&db, |p| sqlx::query(
                "insert into binding (student_id, meter_id, is_default, created_at_ms) values ($1, $2, true, 0)"
            )
            .bind(s.id)
            .bind(m.id.get())
            .execute(p)
            .await
            .map(|_| ()))
            .unwrap();
            students.push(s.id);
        }
        let (a, b) = tokio::join!(
            store::students::change_meter_password(
                &db,
                students[0],
                m.id.get(),
                None,
                "hash-a",
                NOW
            ),
            store::students::change_meter_password(
                &db,
                students[1],
                m.id.get(),
                None,
                "hash-b",
                NOW
            )
        );
        let won = [a, b]
            .into_iter()
            .filter(|r| matches!(r, Ok(Some(_))))
            .count();
        assert_eq!(won, 1, "{:?}: both password changes won", db.backend());
        // A change from a hash that is no longer current changes nothing.
        let stale = store::students::change_meter_password(
            &db,
            students[0],
            m.id.get(),
            None,
            "hash-c",
            NOW,
        )
        .await
        .unwrap();
        assert!(stale.is_none());
    }
}
