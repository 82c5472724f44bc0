//! Counter shifts (issue 13 item 3) on SQLite and, when
//! `DORMWATT_TEST_PG_URL` is set, on PostgreSQL at READ COMMITTED.

mod common;

use common::{NOW, audit_actions, audit_rows, operator, seeded, winners};
use domain::WholeKwh;
use domain::counter::Tender;
use domain::staff::Role;
use domain::{CentiKwh, Fen};
use store::{Db, Error, orders, shifts};

/// Sells `kwh` to `address` into `shift` the way the console does: the
/// order and its shift link in one transaction.
async fn sell(
    db: &Db,
    shift: i64,
    op: i64,
    address: &str,
    kwh: u64,
    tender: Tender,
) -> Result<orders::Order, Error> {
    let mut tx = db.begin().await?;
    let o = orders::create_counter_sale_in(
        &mut tx,
        1,
        address,
        WholeKwh::new(kwh, 500).unwrap(),
        "cashier",
        NOW + 10,
    )
    .await
    .map_err(|e| Error::Conflict(e.to_string()))?;
    shifts::record_sale_in(&mut tx, shift, op, o.id, tender).await?;
    tx.commit().await?;
    Ok(o)
}

/// Shift `id` as stored.
async fn stored(db: &Db, id: i64) -> shifts::Shift {
    shifts::get(db, id).await.unwrap().expect("shift")
}

async fn order_count(db: &Db) -> usize {
    let mut n = 0;
    for id in 1..200 {
        if orders::by_id(db, domain::OrderId::new(id))
            .await
            .unwrap()
            .is_some()
        {
            n += 1;
        }
    }
    n
}

#[tokio::test]
async fn a_cashier_has_one_open_shift_at_a_time() {
    for db in seeded().await {
        let (op, actor) = operator(&db, "cashier1", Role::Cashier).await;
        let s = shifts::open(&db, op, &actor, NOW).await.unwrap();
        assert!(s.is_open());
        let again = shifts::open(&db, op, &actor, NOW + 1).await;
        assert!(matches!(again, Err(Error::Conflict(_))), "{again:?}");
        let all = shifts::list(&db, Some(op), 10).await.unwrap();
        assert_eq!(all.len(), 1, "{:?}", db.backend());
        assert_eq!(shifts::open_for(&db, op).await.unwrap().unwrap().id, s.id);
        // Another cashier opens their own.
        let (op2, actor2) = operator(&db, "cashier2", Role::Cashier).await;
        shifts::open(&db, op2, &actor2, NOW + 2).await.unwrap();
        // After the close a new one may open.
        shifts::close(&db, s.id, op, Fen::new(0), &actor, NOW + 3)
            .await
            .unwrap();
        let next = shifts::open(&db, op, &actor, NOW + 4).await.unwrap();
        assert_ne!(next.id, s.id);
        let acts = audit_actions(&db).await;
        assert_eq!(
            acts.iter().filter(|a| *a == "shift_opened").count(),
            3,
            "{acts:?}"
        );
    }
}

#[tokio::test]
async fn totals_by_tender_and_the_cash_difference() {
    for db in seeded().await {
        let (op, actor) = operator(&db, "cashier1", Role::Cashier).await;
        let s = shifts::open(&db, op, &actor, NOW).await.unwrap();
        let a = sell(&db, s.id, op, "201701010001", 30, Tender::Cash)
            .await
            .unwrap();
        let b = sell(&db, s.id, op, "201701010002", 10, Tender::Cash)
            .await
            .unwrap();
        let c = sell(&db, s.id, op, "201701010003", 5, Tender::Card)
            .await
            .unwrap();
        let t = shifts::totals(&db, s.id).await.unwrap();
        let cash = t.of(Tender::Cash);
        assert_eq!(cash.count, 2);
        assert_eq!(cash.energy, CentiKwh::new(4_000));
        assert_eq!(cash.amount.get(), a.amount_fen.get() + b.amount_fen.get());
        let card = t.of(Tender::Card);
        assert_eq!((card.count, card.energy), (1, CentiKwh::new(500)));
        assert_eq!(card.amount, c.amount_fen);
        assert_eq!(
            shifts::of_order(&db, c.id).await.unwrap(),
            Some((s.id, Tender::Card))
        );
        let counted = Fen::new(cash.amount.get() - 150);
        let (closed, t2) = shifts::close(&db, s.id, op, counted, &actor, NOW + 100)
            .await
            .unwrap();
        assert_eq!(t2, t);
        assert_eq!(closed.expected_cash_fen, Some(cash.amount));
        assert_eq!(closed.counted_cash_fen, Some(counted));
        assert_eq!(closed.difference_fen(), Some(Fen::new(-150)));
        assert_eq!(closed.sales_count, 3);
        assert_eq!(shifts::sales(&db, s.id).await.unwrap().len(), 3);
        let last = audit_rows(&db, "shift_closed")
            .await
            .into_iter()
            .next()
            .expect("shift_closed audited");
        let after = last.after_json.unwrap_or_default();
        assert!(after.contains("\"difference_fen\":-150"), "{after}");
        assert!(
            last.before_json
                .unwrap_or_default()
                .contains("\"open\":true")
        );
    }
}

#[tokio::test]
async fn a_closed_shift_is_read_only() {
    for db in seeded().await {
        let (op, actor) = operator(&db, "cashier1", Role::Cashier).await;
        let s = shifts::open(&db, op, &actor, NOW).await.unwrap();
        sell(&db, s.id, op, "201701010001", 3, Tender::Cash)
            .await
            .unwrap();
        let (closed, _) = shifts::close(&db, s.id, op, Fen::new(999), &actor, NOW + 5)
            .await
            .unwrap();
        let before_orders = order_count(&db).await;
        // Closing twice changes nothing.
        let twice = shifts::close(&db, s.id, op, Fen::new(1), &actor, NOW + 6).await;
        assert!(matches!(twice, Err(Error::Conflict(_))), "{twice:?}");
        assert_eq!(stored(&db, s.id).await, closed);
        // Selling into it is refused, and the order rolls back with it.
        let late = sell(&db, s.id, op, "201701010002", 3, Tender::Cash).await;
        assert!(matches!(late, Err(Error::Conflict(_))), "{late:?}");
        assert_eq!(
            order_count(&db).await,
            before_orders,
            "no order left behind"
        );
        assert_eq!(stored(&db, s.id).await, closed);
        // Another cashier cannot close or sell into someone's shift.
        let (op2, actor2) = operator(&db, "cashier2", Role::Cashier).await;
        let s2 = shifts::open(&db, op2, &actor2, NOW + 7).await.unwrap();
        let theirs = shifts::close(&db, s2.id, op, Fen::new(0), &actor, NOW + 8).await;
        assert!(matches!(theirs, Err(Error::Conflict(_))), "{theirs:?}");
        assert!(
            sell(&db, s2.id, op, "201701010002", 3, Tender::Cash)
                .await
                .is_err()
        );
        assert!(stored(&db, s2.id).await.is_open());
        let closes = audit_rows(&db, "shift_closed").await.len();
        assert_eq!(closes, 1);
    }
}

#[tokio::test]
async fn sign_off_once_and_only_when_closed() {
    for db in seeded().await {
        let (op, actor) = operator(&db, "cashier1", Role::Cashier).await;
        let (admin, admin_actor) = operator(&db, "boss", Role::Administrator).await;
        let s = shifts::open(&db, op, &actor, NOW).await.unwrap();
        let early = shifts::sign_off(&db, s.id, admin, &admin_actor, NOW + 1).await;
        assert!(matches!(early, Err(Error::Conflict(_))), "{early:?}");
        assert_eq!(stored(&db, s.id).await.signed_off_at_ms, None);
        shifts::close(&db, s.id, op, Fen::new(0), &actor, NOW + 2)
            .await
            .unwrap();
        let ok = shifts::sign_off(&db, s.id, admin, &admin_actor, NOW + 3)
            .await
            .unwrap();
        assert_eq!(ok.signed_off_by.as_deref(), Some("boss"));
        assert_eq!(ok.signed_off_at_ms, Some(NOW + 3));
        let twice = shifts::sign_off(&db, s.id, admin, &admin_actor, NOW + 4).await;
        assert!(matches!(twice, Err(Error::Conflict(_))), "{twice:?}");
        assert_eq!(stored(&db, s.id).await.signed_off_at_ms, Some(NOW + 3));
        let n = audit_rows(&db, "shift_signed_off").await.len();
        assert_eq!(n, 1);
    }
}

#[tokio::test]
async fn two_opens_at_once_open_one_shift() {
    for db in seeded().await {
        let (op, actor) = operator(&db, "cashier1", Role::Cashier).await;
        let won = winners(
            &db,
            8,
            |db, i| {
                let actor = actor.clone();
                async move { shifts::open(&db, op, &actor, NOW + i).await }
            },
            |e| matches!(e, Error::Conflict(_)),
        )
        .await;
        assert_eq!(won.len(), 1, "{:?}", db.backend());
        assert_eq!(shifts::list(&db, Some(op), 50).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn two_closes_at_once_close_once() {
    for db in seeded().await {
        let (op, actor) = operator(&db, "cashier1", Role::Cashier).await;
        let s = shifts::open(&db, op, &actor, NOW).await.unwrap();
        sell(&db, s.id, op, "201701010001", 4, Tender::Cash)
            .await
            .unwrap();
        let won = winners(
            &db,
            8,
            |db, i| {
                let actor = actor.clone();
                async move {
                    shifts::close(&db, s.id, op, Fen::new(100 + i), &actor, NOW + 10 + i).await
                }
            },
            |e| matches!(e, Error::Conflict(_)),
        )
        .await;
        assert_eq!(won.len(), 1, "{:?}", db.backend());
        let row = stored(&db, s.id).await;
        assert_eq!(row, won[0].0, "the winner's close is the one stored");
        let closes = audit_rows(&db, "shift_closed").await.len();
        assert_eq!(closes, 1);
    }
}

#[tokio::test]
async fn a_sale_racing_the_close_is_in_the_totals_or_refused() {
    for db in seeded().await {
        let (op, actor) = operator(&db, "cashier1", Role::Cashier).await;
        let s = shifts::open(&db, op, &actor, NOW).await.unwrap();
        let mut sales = Vec::new();
        for (i, m) in [
            "201701010001",
            "201701010002",
            "201701010003",
            "201701010004",
        ]
        .into_iter()
        .enumerate()
        {
            let db = db.clone();
            sales.push(tokio::spawn(async move {
                sell(&db, s.id, op, m, 1 + i as u64, Tender::Cash).await
            }));
        }
        let closing = {
            let db = db.clone();
            let actor = actor.clone();
            tokio::spawn(async move {
                shifts::close(&db, s.id, op, Fen::new(0), &actor, NOW + 50).await
            })
        };
        let mut sold = 0i64;
        for t in sales {
            if let Ok(o) = t.await.unwrap() {
                sold += o.amount_fen.get();
            }
        }
        let (closed, _) = closing.await.unwrap().unwrap();
        assert_eq!(
            closed.expected_cash_fen,
            Some(Fen::new(sold)),
            "{:?}: every sale that committed is in the close",
            db.backend()
        );
    }
}

#[tokio::test]
async fn two_sign_offs_at_once_sign_once() {
    for db in seeded().await {
        let (op, actor) = operator(&db, "cashier1", Role::Cashier).await;
        let s = shifts::open(&db, op, &actor, NOW).await.unwrap();
        shifts::close(&db, s.id, op, Fen::new(0), &actor, NOW + 1)
            .await
            .unwrap();
        let mut admins = Vec::new();
        for i in 0..6 {
            admins.push(operator(&db, &format!("admin{i}"), Role::Administrator).await);
        }
        let won = winners(
            &db,
            6,
            |db, i| {
                let (id, a) = admins[usize::try_from(i).unwrap()].clone();
                async move { shifts::sign_off(&db, s.id, id, &a, NOW + 10 + i).await }
            },
            |e| matches!(e, Error::Conflict(_)),
        )
        .await;
        assert_eq!(won.len(), 1, "{:?}", db.backend());
        let row = stored(&db, s.id).await;
        assert_eq!(row.signed_off_by, won[0].signed_off_by);
        let n = audit_rows(&db, "shift_signed_off").await.len();
        assert_eq!(n, 1);
    }
}
