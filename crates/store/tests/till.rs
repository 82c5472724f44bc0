//! Cash paid back at the counter comes out of the refunding operator's open
//! shift (issue 13 items 3 and 6 together): the cash-up expects that much
//! less. On SQLite and, when `DORMWATT_TEST_PG_URL` is set, PostgreSQL.

mod common;

use common::{NOW, seeded};
use domain::counter::Tender;
use domain::staff::Role;
use domain::{Fen, WholeKwh};
use store::audit::Actor;
use store::{Db, exceptions, ledger, orders, shifts};

async fn administrator(db: &Db, name: &str) -> Actor {
    common::operator(db, name, Role::Administrator).await.1
}

/// A cash sale of `kwh` into `shift`, then overdue (refundable).
async fn cash_sale(db: &Db, shift: i64, actor: &Actor, address: &str, kwh: u64) -> orders::Order {
    let mut tx = db.begin().await.unwrap();
    let o = orders::create_counter_sale_in(
        &mut tx,
        1,
        address,
        WholeKwh::new(kwh, 500).unwrap(),
        &actor.name,
        NOW + 10,
    )
    .await
    .unwrap();
    shifts::record_sale_in(
        &mut tx,
        shift,
        actor.operator_id.unwrap(),
        o.id,
        Tender::Cash,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    o
}

#[tokio::test]
async fn a_counter_refund_paid_from_an_open_shift_lowers_its_expected_cash() {
    for db in seeded().await {
        let admin = administrator(&db, "till-admin").await;
        let other = administrator(&db, "office-admin").await;
        let shift = shifts::open(&db, admin.operator_id.unwrap(), &admin, NOW)
            .await
            .unwrap();
        let kept = cash_sale(&db, shift.id, &admin, "201701010010", 4).await;
        let back = cash_sale(&db, shift.id, &admin, "201701010011", 3).await;
        let elsewhere = cash_sale(&db, shift.id, &admin, "201701010012", 2).await;
        orders::mark_overdue(&db, 1, NOW + 10_000).await.unwrap();
        // Paid back by the shift's own operator: out of this till.
        exceptions::refund(&db, back.id, &admin, NOW + 10_001)
            .await
            .unwrap();
        // Paid back by an operator with no open shift: not this till's.
        exceptions::refund(&db, elsewhere.id, &other, NOW + 10_002)
            .await
            .unwrap();
        let t = shifts::totals(&db, shift.id).await.unwrap();
        assert_eq!(t.refunds, 1, "{:?}", db.backend());
        assert_eq!(t.cash_refunded, back.amount_fen);
        let sold = kept.amount_fen.get() + back.amount_fen.get() + elsewhere.amount_fen.get();
        assert_eq!(t.of(Tender::Cash).amount.get(), sold);
        let expected = sold - back.amount_fen.get();
        let (closed, _) = shifts::close(
            &db,
            shift.id,
            admin.operator_id.unwrap(),
            Fen::new(expected),
            &admin,
            NOW + 20_000,
        )
        .await
        .unwrap();
        assert_eq!(closed.expected_cash_fen, Some(Fen::new(expected)));
        assert_eq!(closed.difference_fen(), Some(Fen::new(0)));
        assert!(ledger::check(&db).await.unwrap().is_empty());
    }
}

/// A refund and the close of the refunding operator's shift at the same
/// moment: the refund is either in the shift (and its expected cash) or in
/// no shift, never lost between them.
#[tokio::test]
async fn a_refund_racing_the_close_of_its_shift_is_counted_once_or_not_at_all() {
    for db in seeded().await {
        for round in 0..6_i64 {
            let admin = administrator(&db, &format!("race-admin-{round}")).await;
            let op = admin.operator_id.unwrap();
            let shift = shifts::open(&db, op, &admin, NOW).await.unwrap();
            let address = format!("2017010100{:02}", 20 + round);
            let o = cash_sale(&db, shift.id, &admin, &address, 2).await;
            orders::mark_overdue(&db, 1, NOW + 10_000).await.unwrap();
            let (refund, close) = tokio::join!(
                exceptions::refund(&db, o.id, &admin, NOW + 10_001),
                shifts::close(&db, shift.id, op, Fen::new(0), &admin, NOW + 10_001),
            );
            refund.expect("the refund");
            let (closed, _) = close.expect("the close");
            let t = shifts::totals(&db, shift.id).await.unwrap();
            let expected = closed.expected_cash_fen.unwrap();
            // What the close fixed matches what the shift's refund rows say.
            assert_eq!(
                expected.get(),
                o.amount_fen.get() - t.cash_refunded.get(),
                "{:?} round {round}",
                db.backend()
            );
            assert!(t.refunds <= 1);
        }
    }
}

/// The dashboard splits counter sales by tender and counts as exceptions
/// the orders with an unresolved flag (what the exceptions queue lists),
/// not every order in state `delayed`.
#[tokio::test]
async fn the_dashboard_splits_counter_tenders_and_counts_unresolved_flags() {
    use store::dashboard::{self, Within};
    for db in store::testing::all_seeded(NOW).await.expect("seeded") {
        let admin = administrator(&db, "dash-admin").await;
        let shift = shifts::open(&db, admin.operator_id.unwrap(), &admin, NOW)
            .await
            .unwrap();
        let cash = cash_sale(&db, shift.id, &admin, "201701010026", 4).await;
        let card = {
            let mut tx = db.begin().await.unwrap();
            let o = orders::create_counter_sale_in(
                &mut tx,
                1,
                "201701010027",
                WholeKwh::new(3, 500).unwrap(),
                &admin.name,
                NOW + 10,
            )
            .await
            .unwrap();
            shifts::record_sale_in(
                &mut tx,
                shift.id,
                admin.operator_id.unwrap(),
                o.id,
                Tender::Card,
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
            o
        };
        orders::mark_overdue(&db, 1, NOW + 10_000).await.unwrap();
        let day = (NOW - 3_600_000, NOW + 3_600_000);
        let before = dashboard::figures(&db, &Within::default(), day.0, day.1)
            .await
            .unwrap();
        let channels: Vec<(&str, i64, i64)> = before
            .sales
            .iter()
            .map(|s| (s.channel.as_str(), s.orders, s.kwh))
            .collect();
        assert_eq!(
            channels,
            [("counter:card", 1, 3), ("counter:cash", 1, 4)],
            "{:?}",
            db.backend()
        );
        assert_eq!(before.exceptions, 2);
        exceptions::resolve(&db, card.id, &admin, "paid back by hand", NOW + 10_001)
            .await
            .unwrap();
        let after = dashboard::figures(&db, &Within::default(), day.0, day.1)
            .await
            .unwrap();
        assert_eq!(
            after.exceptions,
            1,
            "{:?}: only {} is left",
            db.backend(),
            cash.out_trade_no
        );
    }
}
