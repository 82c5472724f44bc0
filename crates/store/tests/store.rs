//! Store tests, run on SQLite always and on PostgreSQL when
//! `DORMWATT_TEST_PG_URL` is set (CI sets it).

use domain::campus::{REFERENCE_BUILDINGS, REFERENCE_METERS, reference_plan};
use domain::order::{OrderEvent, OrderState, UNPAID_TTL_MS};
use domain::{Fen, MeterId, StudentId};
use store::campus::{GatewayAddressing, SeedOutcome};
use store::orders::{self, NewOrder, PaidOutcome, PaymentConfirmation};
use store::{Db, jobs, ledger, testing};

mod common;

use common::{NOW, counter_sale, ledger_ok, req, seeded};

#[tokio::test]
async fn seed_creates_the_reference_campus_once() {
    for db in testing::all().await.unwrap() {
        let out = store::campus::seed(&db, &reference_plan(), &GatewayAddressing::default(), NOW)
            .await
            .unwrap();
        assert_eq!(
            out,
            SeedOutcome::Created {
                meters: REFERENCE_METERS + 48
            }
        );
        let again = store::campus::seed(&db, &reference_plan(), &GatewayAddressing::default(), NOW)
            .await
            .unwrap();
        assert_eq!(again, SeedOutcome::AlreadyPresent);
        let s = store::campus::status(&db).await.unwrap();
        assert_eq!(
            (s.areas, s.buildings, s.meters, s.rooms),
            (2, 18, 2364, 2364)
        );
        let reference: i64 = s
            .meters_per_building
            .iter()
            .filter(|(k, _)| k.starts_with("中国传媒大学 / "))
            .map(|(_, v)| v)
            .sum();
        assert_eq!(reference, 2316);
        for (name, _, n) in REFERENCE_BUILDINGS {
            let key = format!("中国传媒大学 / {name}");
            assert_eq!(
                s.meters_per_building
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, n)| *n),
                Some(i64::try_from(n).unwrap()),
                "{key}"
            );
        }
        assert!(s.buses >= 2316 / 64);
        assert_eq!(s.schema_version, db.known_schema_version());
    }
}

#[tokio::test]
async fn newer_schema_is_refused() {
    for db in testing::all().await.unwrap() {
        store::on_db!(&db, |p| sqlx::query(
            "insert into _sqlx_migrations (version, description, success, checksum, execution_time)
             values (9999, 'from the future', true, $1, 0)"
        )
        .bind(vec![0u8; 48])
        .execute(p)
        .await
        .map(|_| ()))
        .unwrap();
        let e = db.check_not_newer().await.unwrap_err();
        assert!(e.to_string().contains("9999"), "{e}");
        assert!(db.migrate().await.is_err());
    }
}

/// One index or key of the schema as both backends can describe it.
/// Constraint-backed indexes get generated names that differ by backend
/// (`sqlite_autoindex_orders_1` vs `orders_out_trade_no_key`), so for them
/// the name is left out and the kind, table and columns identify them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct IndexShape {
    table: String,
    /// `primary key`, `unique constraint` or `index`.
    kind: &'static str,
    /// The index name for `create index`; empty for constraints.
    name: String,
    unique: bool,
    partial: bool,
    /// Indexed columns in order; `<expr>` for an expression.
    columns: Vec<String>,
}

async fn columns_of(db: &Db) -> Vec<(String, String)> {
    match db {
        Db::Sqlite(p) => sqlx::query_as(
            "select m.name, p.name from sqlite_master m join pragma_table_info(m.name) p
             where m.type = 'table' and m.name not like '\\_%' escape '\\' and m.name not like 'sqlite%'
             order by 1, 2",
        )
        .fetch_all(p)
        .await
        .unwrap(),
        Db::Postgres(p) => sqlx::query_as(
            "select table_name::text, column_name::text from information_schema.columns
             where table_schema = 'public' and table_name not like '\\_%' order by 1, 2",
        )
        .fetch_all(p)
        .await
        .unwrap(),
    }
}

/// table, index, unique, origin, partial, seqno, column.
type SqliteIndexRow = (String, String, bool, String, bool, i64, Option<String>);
/// table, index, unique, primary, partial, constraint type, columns.
type PgIndexRow = (String, String, bool, bool, bool, Option<String>, String);

async fn indexes_of(db: &Db) -> Vec<IndexShape> {
    let mut out = Vec::new();
    match db {
        Db::Sqlite(p) => {
            // A rowid alias (`integer primary key`) has no index entry, so
            // primary keys come from the table info for every table alike.
            let pks: Vec<(String, String, i64)> = sqlx::query_as(
                "select m.name, p.name, p.pk from sqlite_master m join pragma_table_info(m.name) p
                 where m.type = 'table' and m.name not like '\\_%' escape '\\'
                   and m.name not like 'sqlite%' and p.pk > 0
                 order by 1, 3",
            )
            .fetch_all(p)
            .await
            .unwrap();
            for (table, column, _) in pks {
                match out.last_mut() {
                    Some(IndexShape {
                        table: t, columns, ..
                    }) if *t == table => {
                        columns.push(column);
                    }
                    _ => out.push(IndexShape {
                        table,
                        kind: "primary key",
                        name: String::new(),
                        unique: true,
                        partial: false,
                        columns: vec![column],
                    }),
                }
            }
            let rows: Vec<SqliteIndexRow> = sqlx::query_as(
                "select m.name, l.name, l.\"unique\", l.origin, l.partial, i.seqno, i.name
                     from sqlite_master m join pragma_index_list(m.name) l
                     join pragma_index_info(l.name) i
                     where m.type = 'table' and m.name not like '\\_%' escape '\\'
                       and m.name not like 'sqlite%' and l.origin <> 'pk'
                     order by 1, 2, 6",
            )
            .fetch_all(p)
            .await
            .unwrap();
            let mut last_index = String::new();
            for (table, index, unique, origin, partial, _, column) in rows {
                let column = column.unwrap_or_else(|| "<expr>".to_owned());
                if index == last_index
                    && let Some(shape) = out.last_mut()
                {
                    shape.columns.push(column);
                    continue;
                }
                last_index.clone_from(&index);
                let constraint = origin == "u";
                out.push(IndexShape {
                    table,
                    kind: if constraint {
                        "unique constraint"
                    } else {
                        "index"
                    },
                    name: if constraint { String::new() } else { index },
                    unique,
                    partial,
                    columns: vec![column],
                });
            }
        }
        Db::Postgres(p) => {
            let rows: Vec<PgIndexRow> =
                sqlx::query_as(
                    "select t.relname::text, i.relname::text, x.indisunique, x.indisprimary,
                            x.indpred is not null, c.contype::text,
                            (select string_agg(coalesce(a.attname::text, '<expr>'), ',' order by k.ord)
                             from unnest(x.indkey::int2[]) with ordinality k(attnum, ord)
                             left join pg_attribute a on a.attrelid = t.oid and a.attnum = k.attnum)
                     from pg_index x
                     join pg_class i on i.oid = x.indexrelid
                     join pg_class t on t.oid = x.indrelid
                     join pg_namespace n on n.oid = t.relnamespace
                     left join pg_constraint c on c.conindid = x.indexrelid and c.contype in ('p', 'u')
                     where n.nspname = 'public' and t.relname not like '\\_%'",
                )
                .fetch_all(p)
                .await
                .unwrap();
            for (table, index, unique, primary, partial, contype, columns) in rows {
                let kind = match (primary, contype.as_deref()) {
                    (true, _) | (_, Some("p")) => "primary key",
                    (_, Some("u")) => "unique constraint",
                    _ => "index",
                };
                out.push(IndexShape {
                    table,
                    kind,
                    name: if kind == "index" {
                        index
                    } else {
                        String::new()
                    },
                    unique,
                    partial,
                    columns: columns.split(',').map(str::to_owned).collect(),
                });
            }
        }
    }
    out.sort();
    out
}

/// The two migration trees must give the same tables, columns, keys,
/// unique constraints and indexes (name, table, uniqueness, columns).
#[tokio::test]
async fn schema_trees_have_the_same_tables_and_columns() {
    let dbs = testing::all().await.unwrap();
    if dbs.len() < 2 {
        return;
    }
    let (sqlite, postgres) = (&dbs[0], &dbs[1]);
    let columns = (columns_of(sqlite).await, columns_of(postgres).await);
    assert!(!columns.0.is_empty());
    assert_eq!(columns.0, columns.1, "columns differ (sqlite, postgres)");
    let indexes = (indexes_of(sqlite).await, indexes_of(postgres).await);
    assert!(indexes.0.iter().any(|i| i.kind == "unique constraint"));
    assert!(indexes.0.iter().any(|i| i.kind == "index"));
    let only_sqlite: Vec<_> = indexes
        .0
        .iter()
        .filter(|i| !indexes.1.contains(i))
        .collect();
    let only_postgres: Vec<_> = indexes
        .1
        .iter()
        .filter(|i| !indexes.0.contains(i))
        .collect();
    assert!(
        only_sqlite.is_empty() && only_postgres.is_empty(),
        "indexes differ\nonly on SQLite: {only_sqlite:#?}\nonly on PostgreSQL: {only_postgres:#?}"
    );
}

#[tokio::test]
async fn payment_is_credited_once_and_writes_ledger_and_job() {
    for db in seeded().await {
        let o = orders::create(&db, &req("201701010001", 20), NOW)
            .await
            .unwrap();
        assert_eq!(o.state, OrderState::Unpaid);
        assert_eq!(o.amount_fen, Fen::new(1060)); // 20 kWh × 0.53 元
        assert_eq!(o.expires_at_ms, NOW + UNPAID_TTL_MS);
        let conf = PaymentConfirmation {
            out_trade_no: &o.out_trade_no,
            transaction_id: "wx1",
            amount_fen: Fen::new(1060),
        };
        for i in 0..15 {
            let out = orders::record_payment(&db, &conf, NOW + 1000 + i)
                .await
                .unwrap();
            match (i, out) {
                (0, PaidOutcome::Credited(p)) => assert_eq!(p.state, OrderState::Charging),
                (0, other) => panic!("first must credit: {other:?}"),
                (_, PaidOutcome::AlreadyRecorded(_)) => {}
                (_, other) => panic!("duplicate credited: {other:?}"),
            }
        }
        let claimed = jobs::claim(&db, orders::DELIVER_QUEUE, "w", NOW + 2000, 60_000, 10)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        ledger_ok(&db).await;
        // Wrong amount and unknown order change nothing.
        let o2 = orders::create(&db, &req("201701010002", 5), NOW)
            .await
            .unwrap();
        let bad = PaymentConfirmation {
            out_trade_no: &o2.out_trade_no,
            transaction_id: "wx2",
            amount_fen: Fen::new(1),
        };
        assert!(matches!(
            orders::record_payment(&db, &bad, NOW).await,
            Err(orders::PayError::AmountMismatch { .. })
        ));
        let unknown = PaymentConfirmation {
            out_trade_no: "DWnope",
            transaction_id: "wx3",
            amount_fen: Fen::new(1),
        };
        assert!(matches!(
            orders::record_payment(&db, &unknown, NOW).await,
            Err(orders::PayError::UnknownOrder)
        ));
        assert_eq!(
            orders::by_id(&db, o2.id).await.unwrap().unwrap().state,
            OrderState::Unpaid
        );
        ledger_ok(&db).await;
    }
}

#[tokio::test]
async fn expiry_at_two_hours_and_late_payment_is_credited() {
    for db in seeded().await {
        let o = orders::create(&db, &req("201701010003", 10), NOW)
            .await
            .unwrap();
        assert!(
            orders::close(&db, o.id, OrderEvent::Expire, NOW + UNPAID_TTL_MS - 1)
                .await
                .is_err()
        );
        assert!(
            orders::expired_unpaid(&db, NOW + UNPAID_TTL_MS - 1, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            orders::expired_unpaid(&db, NOW + UNPAID_TTL_MS, 10)
                .await
                .unwrap()
                .len(),
            1
        );
        let closed = orders::close(&db, o.id, OrderEvent::Expire, NOW + UNPAID_TTL_MS)
            .await
            .unwrap();
        assert_eq!(closed.state, OrderState::Closed);
        ledger_ok(&db).await;
        let conf = PaymentConfirmation {
            out_trade_no: &o.out_trade_no,
            transaction_id: "wxlate",
            amount_fen: Fen::new(530),
        };
        let out = orders::record_payment(&db, &conf, NOW + UNPAID_TTL_MS + 5000)
            .await
            .unwrap();
        assert!(matches!(out, PaidOutcome::Credited(ref p) if p.state == OrderState::Charging));
        ledger_ok(&db).await;
    }
}

#[tokio::test]
async fn delivery_then_refund_paths_keep_the_ledger_balanced() {
    for db in seeded().await {
        let a = counter_sale(&db, "201701010004", 3, "op1").await;
        assert_eq!(a.state, OrderState::Charging);
        let seq = orders::assign_purchase_seq(&db, a.id, NOW).await.unwrap();
        assert_eq!(seq.seq(), Some(1));
        assert_eq!(
            orders::assign_purchase_seq(&db, a.id, NOW + 1)
                .await
                .unwrap()
                .seq(),
            Some(1),
            "assigned once"
        );
        store::meters::set_purchase_count(&db, a.meter_id, 1, NOW + 5)
            .await
            .unwrap();
        let mut tx = db.begin().await.unwrap();
        assert!(
            orders::mark_delivered(&mut tx, a.id, NOW + 10)
                .await
                .unwrap()
        );
        tx.commit().await.unwrap();
        let mut tx = db.begin().await.unwrap();
        assert!(
            !orders::mark_delivered(&mut tx, a.id, NOW + 11)
                .await
                .unwrap(),
            "second confirmation is a no-op"
        );
        tx.commit().await.unwrap();
        ledger_ok(&db).await;

        let b = counter_sale(&db, "201701010004", 4, "op1").await;
        assert!(
            orders::request_refund(&db, b.id, NOW).await.is_err(),
            "charging orders are not refundable"
        );
        assert_eq!(
            orders::mark_overdue(&db, 60_000, NOW + 60_000)
                .await
                .unwrap(),
            1
        );
        let r = orders::request_refund(&db, b.id, NOW + 60_001)
            .await
            .unwrap();
        assert_eq!(r.state, OrderState::Refunding);
        let done = orders::finish_refund(&db, r.refund_no.as_deref().unwrap(), true, NOW + 70_000)
            .await
            .unwrap();
        assert_eq!(done.state, OrderState::Refunded);
        ledger_ok(&db).await;
        // A counter order's refund is cash paid back at the counter: it
        // returns to `counter_cash` (docs/ARCHITECTURE.md, counter refunds).
        // What is left is the delivered sale's cash.
        assert_eq!(
            ledger::balance(&db, "counter_cash", "fen").await.unwrap(),
            -a.amount_fen.get()
        );
        assert_eq!(ledger::balance(&db, "refunds", "fen").await.unwrap(), 0);

        // Once a sequence number is assigned a frame may be on the meter: no refund.
        let c = counter_sale(&db, "201701010004", 5, "op1").await;
        assert_eq!(
            orders::assign_purchase_seq(&db, c.id, NOW)
                .await
                .unwrap()
                .seq(),
            Some(2)
        );
        orders::mark_overdue(&db, 60_000, NOW + 60_000)
            .await
            .unwrap();
        let e = orders::request_refund(&db, c.id, NOW + 60_001)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("purchase 2"), "{e}");
        assert_eq!(
            orders::by_id(&db, c.id).await.unwrap().unwrap().state,
            OrderState::Delayed
        );
        ledger_ok(&db).await;
        assert_eq!(
            ledger::balance(&db, "delivered:4", "centikwh")
                .await
                .unwrap(),
            300
        );
    }
}

#[tokio::test]
async fn hoarding_limit_and_bad_orders_are_refused_before_payment() {
    for db in seeded().await {
        store::on_db!(&db, |p| sqlx::query(
            "update meter set hoard_limit_centikwh = 5000 where address = '201701010005'"
        )
        .execute(p)
        .await
        .map(|_| ()))
        .unwrap();
        let e = orders::create(&db, &req("201701010005", 60), NOW)
            .await
            .unwrap_err();
        assert!(
            matches!(e, orders::CreateError::HoardingLimit { room: 50, .. }),
            "{e}"
        );
        // Wrong area for the meter: same answer as an unknown meter.
        let e = orders::create(
            &db,
            &NewOrder {
                area_id: 2,
                ..req("201701010005", 1)
            },
            NOW,
        )
        .await
        .unwrap_err();
        assert!(matches!(e, orders::CreateError::NoSuchMeter));
        let e = orders::create(&db, &req("999999999999", 1), NOW)
            .await
            .unwrap_err();
        assert!(matches!(e, orders::CreateError::NoSuchMeter));
        let s = store::campus::status(&db).await.unwrap();
        assert_eq!(s.orders_open, 0);
    }
}

#[tokio::test]
async fn jobs_lease_retry_and_dead_letter() {
    for db in testing::all().await.unwrap() {
        let mut tx = db.begin().await.unwrap();
        let job = jobs::NewJob {
            queue: "q",
            dedup_key: Some("k1"),
            payload: "{}",
            priority: 0,
            run_at_ms: NOW,
            attempts_max: 2,
        };
        assert!(jobs::enqueue(&mut tx, &job, NOW).await.unwrap());
        assert!(
            !jobs::enqueue(&mut tx, &job, NOW).await.unwrap(),
            "dedup key"
        );
        tx.commit().await.unwrap();
        let a = jobs::claim(&db, "q", "w1", NOW, 1000, 5).await.unwrap();
        assert_eq!(a.len(), 1);
        assert!(
            jobs::claim(&db, "q", "w2", NOW + 10, 1000, 5)
                .await
                .unwrap()
                .is_empty(),
            "leased"
        );
        // The lease runs out: another worker may take it.
        let b = jobs::claim(&db, "q", "w2", NOW + 1001, 1000, 5)
            .await
            .unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].attempts, 2);
        assert!(
            jobs::fail(&db, &b[0], "boom", NOW + 1002, 60_000)
                .await
                .unwrap(),
            "dead after attempts_max"
        );
        assert!(
            jobs::claim(&db, "q", "w3", NOW + 1_000_000, 1000, 5)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(jobs::revive(&db, b[0].id, NOW + 2000).await.unwrap());
        let c = jobs::claim(&db, "q", "w3", NOW + 2000, 1000, 5)
            .await
            .unwrap();
        assert_eq!(c.len(), 1);
        assert!(
            !jobs::fail(&db, &c[0], "again", NOW + 2001, 60_000)
                .await
                .unwrap()
        );
        assert!(
            jobs::claim(&db, "q", "w3", NOW + 2002, 1000, 5)
                .await
                .unwrap()
                .is_empty(),
            "backoff"
        );
        assert_eq!(
            jobs::claim(&db, "q", "w3", NOW + 2001 + 1000, 1000, 5)
                .await
                .unwrap()
                .len(),
            1
        );
    }
}

#[tokio::test]
async fn delivery_and_low_balance_notify_binders_once() {
    for db in seeded().await {
        let student: i64 = store::on_db!(&db, |p| sqlx::query_scalar(
            "insert into student (openid, created_at_ms) values ('o-test', 0) returning id"
        )
        .fetch_one(p)
        .await)
        .unwrap();
        store::on_db!(&db, |p| sqlx::query(
            "insert into binding (student_id, meter_id, is_default, created_at_ms) values ($1, 6, true, 0)"
        )
        .bind(student)
        .execute(p)
        .await
        .map(|_| ()))
        .unwrap();
        let o = counter_sale(&db, "201701010006", 2, "op").await;
        orders::assign_purchase_seq(&db, o.id, NOW + 1)
            .await
            .unwrap();
        store::meters::set_purchase_count(&db, MeterId::new(6), 1, NOW + 2)
            .await
            .unwrap();
        for _ in 0..2 {
            let mut tx = db.begin().await.unwrap();
            orders::mark_delivered(&mut tx, o.id, NOW + 5)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
        let count = |kind: &'static str| {
            let db = db.clone();
            async move {
                store::on_db!(&db, |p| sqlx::query_scalar::<_, i64>(
                    "select count(*) from message where student_id = $1 and kind = $2"
                )
                .bind(student)
                .bind(kind)
                .fetch_one(p)
                .await)
                .unwrap()
            }
        };
        assert_eq!(count("delivered").await, 1);
        // Below the threshold: one message per crossing, however often we scan.
        store::on_db!(&db, |p| sqlx::query(
            "update meter_state set remaining_centikwh = 120, purchase_count = 3 where meter_id = 6"
        )
        .execute(p)
        .await
        .map(|_| ()))
        .unwrap();
        assert_eq!(store::notify::scan_low_balance(&db, NOW).await.unwrap(), 1);
        assert_eq!(
            store::notify::scan_low_balance(&db, NOW + 1).await.unwrap(),
            0
        );
        assert_eq!(count("low_balance").await, 1);
        // Stored as kind + arguments naming the meter (issue 11 item 6).
        let inbox = store::students::messages(&db, student, 10).await.unwrap();
        let typed: Vec<_> = inbox
            .iter()
            .map(|m| match &m.content {
                store::message::MessageContent::Typed(a) => a.clone(),
                other => panic!("untyped message {other:?}"),
            })
            .collect();
        assert!(
            typed.iter().all(|a| a.place().meter == "201701010006"),
            "{typed:?}"
        );
        assert!(typed.iter().any(|a| matches!(
            a,
            store::message::MessageArgs::LowBalance {
                remaining_centikwh: 120,
                ..
            }
        )));
        assert!(
            typed
                .iter()
                .any(|a| matches!(a, store::message::MessageArgs::Delivered { kwh: 2, .. }))
        );
        // After a recharge (purchase count advances) the next crossing notifies again.
        store::on_db!(&db, |p| sqlx::query(
            "update meter_state set purchase_count = 4 where meter_id = 6"
        )
        .execute(p)
        .await
        .map(|_| ()))
        .unwrap();
        assert_eq!(
            store::notify::scan_low_balance(&db, NOW + 2).await.unwrap(),
            1
        );
        ledger_ok(&db).await;
    }
}

/// `/readyz` writes: the probe commits on a healthy database (repeatedly:
/// one row, rewritten) and names the fault on a read-only one.
#[tokio::test]
async fn the_readiness_probe_writes_and_sees_a_read_only_database() {
    for db in testing::all().await.unwrap() {
        for n in 0..3 {
            db.check_writable(NOW + n).await.unwrap();
        }
        let probes: i64 = store::on_db!(&db, |p| sqlx::query_scalar(
            "select probes from health_probe where id = 1"
        )
        .fetch_one(p)
        .await
        .unwrap());
        assert_eq!(probes, 3, "{:?}", db.backend());
    }
    // A read-only PostgreSQL (a standby, or set so) passes a read, not the probe.
    let Some(url) = testing::postgres_url().await.unwrap() else {
        return;
    };
    let db = Db::connect(&url, &store::DbOptions::default())
        .await
        .unwrap();
    db.migrate().await.unwrap();
    if let Db::Postgres(p) = &db {
        let name: String = sqlx::query_scalar("select current_database()::text")
            .fetch_one(p)
            .await
            .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "alter database {name} set default_transaction_read_only = on"
        )))
        .execute(p)
        .await
        .unwrap();
    }
    db.close().await;
    let db = Db::connect(&url, &store::DbOptions::default())
        .await
        .unwrap();
    db.ping().await.unwrap();
    let e = db.check_writable(NOW).await.unwrap_err();
    assert_eq!(
        e.storage_fault(),
        Some(store::StorageFault::ReadOnly),
        "{e}"
    );
    db.close().await;
}

#[tokio::test]
async fn reconciliation_is_fair_across_buyers_and_unpaid_orders_are_capped() {
    for db in seeded().await {
        let a = store::students::upsert_by_openid(&db, "o-flood", false, NOW)
            .await
            .unwrap();
        let b = store::students::upsert_by_openid(&db, "o-real", false, NOW)
            .await
            .unwrap();
        let mk = |student: i64, address: &'static str| {
            let db = db.clone();
            async move {
                let mut r = req(address, 5);
                r.student_id = Some(student);
                let o = orders::create(&db, &r, NOW).await;
                if let Ok(o) = &o {
                    orders::set_prepay_id(&db, o.id, "wx-prepay", NOW)
                        .await
                        .unwrap();
                }
                o
            }
        };
        for _ in 0..3 {
            mk(a.id, "201701010020").await.unwrap();
        }
        // A fourth unpaid order of the same student is refused.
        assert!(matches!(
            mk(a.id, "201701010020").await,
            Err(orders::CreateError::TooManyUnpaid { max: 3 })
        ));
        let real = mk(b.id, "201701010021").await.unwrap();
        let picked = orders::unpaid_to_reconcile(&db, NOW, 2, 3).await.unwrap();
        assert!(
            picked.iter().any(|o| o.id == real.id),
            "{:?}: the other buyer's order is starved",
            db.backend()
        );
        assert_eq!(
            picked
                .iter()
                .filter(|o| o.student_id == Some(StudentId::new(a.id)))
                .count(),
            2
        );
    }
}

/// Whether `r` is `event` refused on an unpaid order.
fn refused_unpaid<T>(r: &store::Result<T>, event: OrderEvent) -> bool {
    matches!(
        r,
        Err(store::Error::IllegalTransition(domain::order::IllegalTransition {
            from: OrderState::Unpaid,
            event: e,
        })) if *e == event
    )
}

#[tokio::test]
async fn a_refused_order_event_keeps_its_states_and_event() {
    for db in seeded().await {
        let o = orders::create(&db, &req("201701010001", 5), NOW)
            .await
            .unwrap();
        // Not a delayed order: the refund is refused with the transition
        // that was refused, not a sentence.
        let refused = orders::request_refund(&db, o.id, NOW + 1).await;
        assert!(
            refused_unpaid(&refused, OrderEvent::RefundRequested),
            "{refused:?}"
        );
        // Expiry before the two hours are up is refused the same way.
        let early = orders::close(&db, o.id, OrderEvent::Expire, NOW + 2).await;
        assert!(refused_unpaid(&early, OrderEvent::Expire), "{early:?}");
    }
}

#[tokio::test]
async fn a_bad_stored_order_value_is_a_corrupt_error_not_a_panic() {
    for db in seeded().await {
        let o = orders::create(&db, &req("201701010001", 5), NOW)
            .await
            .unwrap();
        store::on_db!(&db, |p| sqlx::query(
            // The schema checks the state and the amounts; the frozen
            // price has no check, and a price of 0 is not a price.
            "update orders set unit_price_centifen_per_kwh = 0 where id = $1"
        )
        .bind(o.id.get())
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
        .unwrap();
        let read = orders::by_id(&db, o.id).await;
        match read {
            Err(store::Error::Corrupt(why)) => {
                assert!(why.contains("orders.unit_price_centifen_per_kwh"), "{why}");
                assert!(why.contains("= 0"), "{why}");
            }
            other => panic!("expected corrupt data, got {other:?}"),
        }
        // The same row read through another query is refused the same way.
        assert!(matches!(
            orders::by_out_trade_no(&db, &o.out_trade_no).await,
            Err(store::Error::Corrupt(_))
        ));
    }
}
