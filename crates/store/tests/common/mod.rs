//! Helpers shared by the store's integration tests; each test binary
//! includes this module (`mod common;`).
#![allow(dead_code, reason = "each test binary uses only some of these")]

use domain::WholeKwh;
use domain::order::Channel;
use domain::staff::Role;
use store::audit::{self, Actor, AuditRow};
use store::operators::{self, NewOperator};
use store::orders::{self, NewOrder, PaymentConfirmation};
use store::{Db, ledger, testing};

/// The tests' clock.
pub const NOW: i64 = 1_795_622_400_000;

/// Every test database, seeded with the whole reference campus at [`NOW`].
pub async fn seeded() -> Vec<Db> {
    testing::all_seeded(NOW)
        .await
        .expect("seeded test databases")
}

/// Every test database, seeded at [`NOW`] with two buildings per area.
pub async fn seeded_two_buildings() -> Vec<Db> {
    testing::all_seeded_cut(2, NOW)
        .await
        .expect("seeded test databases")
}

/// Runs `sql` (no parameters) and panics if it fails.
pub async fn exec(db: &Db, sql: &'static str) {
    store::on_db!(db, |p| sqlx::query(sql)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
    .expect(sql);
}

/// Staff who are no operator (the queue's actions only record the name).
pub fn staff(name: &str) -> Actor {
    Actor {
        operator_id: None,
        name: name.to_owned(),
        client_ip: "127.0.0.1".to_owned(),
    }
}

/// An operator with the password `correct horse battery`, no scope.
pub fn new_op(name: &str, role: Role) -> NewOperator {
    static PHC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NewOperator {
        name: name.to_owned(),
        role,
        password_phc: PHC
            .get_or_init(|| domain::staff::hash_password("correct horse battery", [1; 16]).unwrap())
            .clone(),
        area_codes: Vec::new(),
        building_names: Vec::new(),
    }
}

/// Creates operator [`new_op`]`(name, role)` from the command line.
pub async fn created_op(db: &Db, name: &str, role: Role) -> operators::Operator {
    operators::create(db, &new_op(name, role), &Actor::command_line(), NOW)
        .await
        .expect("operator")
}

/// Creates operator `name` ([`created_op`]) and returns its id and the
/// actor it acts as.
pub async fn operator(db: &Db, name: &str, role: Role) -> (i64, Actor) {
    let op = created_op(db, name, role).await;
    let actor = Actor {
        operator_id: Some(op.id),
        name: op.name,
        client_ip: "127.0.0.1".to_owned(),
    };
    (op.id, actor)
}

/// A WeChat order of `kwh` for meter `address` in area 1.
pub fn req(address: &str, kwh: u64) -> NewOrder<'_> {
    NewOrder {
        area_id: 1,
        meter_address: address,
        student_id: None,
        kwh: WholeKwh::new(kwh, 500).unwrap(),
        channel: Channel::Wechat,
        operator: None,
    }
}

/// A [`req`] order created at `at` and paid (WeChat `tx_id`) at `at + 1`.
pub async fn paid(db: &Db, address: &str, kwh: u64, tx_id: &str, at: i64) -> orders::Order {
    let o = orders::create(db, &req(address, kwh), at).await.unwrap();
    let conf = PaymentConfirmation {
        out_trade_no: &o.out_trade_no,
        transaction_id: tx_id,
        amount_fen: o.amount_fen,
    };
    match orders::record_payment(db, &conf, at + 1).await.unwrap() {
        orders::PaidOutcome::Credited(p) => p,
        other => panic!("{other:?}"),
    }
}

/// A counter sale of `kwh` to meter `address` (area 1) by `operator` at
/// [`NOW`].
pub async fn counter_sale(db: &Db, address: &str, kwh: u64, operator: &str) -> orders::Order {
    orders::create_counter_sale(
        db,
        1,
        address,
        WholeKwh::new(kwh, 500).unwrap(),
        operator,
        NOW,
    )
    .await
    .unwrap()
}

/// Asserts that the ledger checks.
pub async fn ledger_ok(db: &Db) {
    let problems = ledger::check(db).await.unwrap();
    assert!(problems.is_empty(), "{:?}: {problems:?}", db.backend());
}

/// The audit rows of `action`, newest first (at most 100).
pub async fn audit_rows(db: &Db, action: &str) -> Vec<AuditRow> {
    audit::search(
        db,
        &audit::Filter {
            action: Some(action.to_owned()),
            limit: 100,
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

/// The actions of the audit log, newest first (at most 1000).
pub async fn audit_actions(db: &Db) -> Vec<String> {
    audit::search(
        db,
        &audit::Filter {
            limit: 1000,
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .into_iter()
    .map(|r| r.action)
    .collect()
}

/// Runs `n` copies of `task` at once, each given its own handle on `db`
/// and its number (0..n), and returns their outputs in that order.
pub async fn at_once<T, F, Fut>(db: &Db, n: i64, task: F) -> Vec<T>
where
    F: Fn(Db, i64) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let tasks: Vec<_> = (0..n).map(|i| tokio::spawn(task(db.clone(), i))).collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out
}

/// Runs `n` copies of `task` at once ([`at_once`]) and returns what the
/// winners returned. A loser's error must be one `lost` accepts; any
/// other error fails the test.
pub async fn winners<T, E, F, Fut>(db: &Db, n: i64, task: F, lost: impl Fn(&E) -> bool) -> Vec<T>
where
    F: Fn(Db, i64) -> Fut,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: std::fmt::Debug + Send + 'static,
{
    let mut won = Vec::new();
    for r in at_once(db, n, task).await {
        match r {
            Ok(v) => won.push(v),
            Err(e) if lost(&e) => {}
            Err(e) => panic!("{:?}: {e:?}", db.backend()),
        }
    }
    won
}
