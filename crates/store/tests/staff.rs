//! Operators and the audit log (issue 13 items 1–2) on SQLite and — when
//! `DORMWATT_TEST_PG_URL` is set — PostgreSQL: creating, scoping and
//! disabling operators, sessions with idle and absolute expiry, the audit
//! chain (append-only in the database, tampering detected, one chain under
//! concurrent appends).

mod common;

use common::{NOW, at_once, audit_actions, created_op, new_op, seeded_two_buildings as seeded};
use domain::staff::Role;
use store::audit::{self, Actor, Entry};
use store::operators;
use store::{Db, Error};

const MIN: i64 = 60_000;

async fn exec(db: &Db, sql: &'static str) -> Result<u64, sqlx::Error> {
    match db {
        Db::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|r| r.rows_affected()),
        Db::Postgres(p) => sqlx::query(sql).execute(p).await.map(|r| r.rows_affected()),
    }
}

#[tokio::test]
async fn operators_are_created_scoped_listed_and_disabled() {
    for db in seeded().await {
        let cli = Actor::command_line();
        let admin = created_op(&db, "admin", Role::Administrator).await;
        assert!(admin.all_areas && admin.scope.areas.is_none());
        let areas = store::campus::areas(&db).await.unwrap();
        let building = domain::campus::reference_plan().areas[0].buildings[0]
            .name_zh
            .clone();
        let mut m = new_op("lou", Role::BuildingManager);
        m.building_names = vec![building.clone()];
        let lou = operators::create(&db, &m, &cli, NOW).await.unwrap();
        assert!(!lou.all_areas);
        assert_eq!(lou.areas, vec![areas[0].code.clone()]);
        assert_eq!(lou.scope.buildings.len(), 1);
        assert!(lou.buildings[0].ends_with(&building), "{:?}", lou.buildings);

        // Refusals, each with its reason.
        let e = operators::create(&db, &new_op("admin", Role::Cashier), &cli, NOW)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("already exists"), "{e}");
        let mut c = new_op("cashier", Role::Cashier);
        c.area_codes = vec!["NOPE".to_owned()];
        let e = operators::create(&db, &c, &cli, NOW).await.unwrap_err();
        assert!(e.to_string().contains("no area has the code NOPE"), "{e}");
        let e = operators::create(&db, &new_op("m2", Role::BuildingManager), &cli, NOW)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("at least one building"), "{e}");
        c.area_codes = vec![areas[1].code.clone()];
        c.building_names = vec![building.clone()];
        let e = operators::create(&db, &c, &cli, NOW).await.unwrap_err();
        assert!(e.to_string().contains("only a building manager"), "{e}");
        c.building_names.clear();
        let cashier = operators::create(&db, &c, &cli, NOW).await.unwrap();
        assert_eq!(cashier.scope.areas, Some(vec![areas[1].id]));

        let names: Vec<String> = operators::list(&db)
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.name)
            .collect();
        assert_eq!(names, ["admin", "cashier", "lou"]);

        operators::create_session(&db, "h-lou", lou.id, "csrf", NOW)
            .await
            .unwrap();
        let d = operators::disable(&db, "lou", &cli, NOW + 1).await.unwrap();
        assert_eq!(d.disabled_at_ms, Some(NOW + 1));
        let e = operators::disable(&db, "lou", &cli, NOW + 2)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Conflict(_)), "{e}");
        assert!(matches!(
            operators::disable(&db, "nobody", &cli, NOW).await,
            Err(Error::NotFound(_))
        ));
        // Disabling ended the session.
        assert!(
            operators::session(&db, "h-lou", NOW + 2, 30 * MIN, 720 * MIN)
                .await
                .unwrap()
                .is_none()
        );
        let actions = audit_actions(&db).await;
        assert_eq!(
            actions,
            [
                "operator_disabled",
                "operator_created",
                "operator_created",
                "operator_created"
            ]
        );
        assert_eq!(audit::verify(&db).await.unwrap().broken, None);
    }
}

#[tokio::test]
async fn sessions_end_when_idle_or_too_old() {
    for db in seeded().await {
        let op = created_op(&db, "wang", Role::Cashier).await;
        let (idle, abs) = (30 * MIN, 720 * MIN);
        operators::create_session(&db, "h1", op.id, "c1", NOW)
            .await
            .unwrap();
        // Touched every 29 minutes it lives on…
        let mut t = NOW;
        while t + 29 * MIN < NOW + abs {
            t += 29 * MIN;
            let s = operators::session(&db, "h1", t, idle, abs).await.unwrap();
            assert_eq!(
                s.map(|s| s.csrf_token).as_deref(),
                Some("c1"),
                "at +{} min",
                (t - NOW) / MIN
            );
        }
        // …but not past 12 hours.
        assert!(
            operators::session(&db, "h1", NOW + abs + 1, idle, abs)
                .await
                .unwrap()
                .is_none()
        );
        // Idle for 30 minutes ends a fresh one.
        operators::create_session(&db, "h2", op.id, "c2", NOW)
            .await
            .unwrap();
        assert!(
            operators::session(&db, "h2", NOW + idle, idle, abs)
                .await
                .unwrap()
                .is_none()
        );
        // And it was removed: coming back earlier does not revive it.
        assert!(
            operators::session(&db, "h2", NOW + 1, idle, abs)
                .await
                .unwrap()
                .is_none()
        );
    }
}

#[tokio::test]
async fn the_audit_log_refuses_updates_and_deletes() {
    for db in seeded().await {
        let who = Actor::command_line();
        let e = Entry {
            actor: &who,
            action: "test",
            subject: "",
            before: None,
            after: Some(serde_json::json!({"k": 1})),
        };
        audit::append(&db, &e, NOW).await.unwrap();
        for sql in [
            "update audit_log set action = 'other'",
            "delete from audit_log",
        ] {
            let err = exec(&db, sql).await.unwrap_err();
            assert!(
                err.to_string().contains("append-only"),
                "{:?} {sql}: {err}",
                db.backend()
            );
        }
        if db.backend() == store::Backend::Postgres {
            let err = exec(&db, "truncate audit_log").await.unwrap_err();
            assert!(err.to_string().contains("append-only"), "{err}");
        }
        assert_eq!(audit::verify(&db).await.unwrap().rows, 1);
    }
}

#[tokio::test]
async fn an_edited_row_breaks_the_chain_at_that_row() {
    for db in seeded().await {
        let who = Actor::command_line();
        for i in 0..5 {
            let e = Entry {
                actor: &who,
                action: "test",
                subject: &format!("n{i}"),
                before: None,
                after: None,
            };
            audit::append(&db, &e, NOW + i).await.unwrap();
        }
        assert_eq!(
            audit::verify(&db).await.unwrap(),
            audit::ChainCheck {
                rows: 5,
                broken: None
            }
        );
        // Behind the triggers' back.
        match db.backend() {
            store::Backend::Sqlite => {
                exec(&db, "drop trigger audit_log_no_update").await.unwrap();
            }
            store::Backend::Postgres => {
                exec(&db, "drop trigger audit_log_no_change on audit_log")
                    .await
                    .unwrap();
            }
        }
        assert_eq!(
            exec(
                &db,
                "update audit_log set client_ip = '6.6.6.6' where seq = 3"
            )
            .await
            .unwrap(),
            1
        );
        let c = audit::verify(&db).await.unwrap();
        assert_eq!(c.rows, 2);
        let b = c.broken.expect("broken");
        assert_eq!(b.seq, 3, "{b:?}");
        assert!(b.reason.contains("does not match its hash"), "{b:?}");
    }
}

/// Two processes (two pools) append at once; the chain stays one chain.
#[tokio::test]
async fn concurrent_appends_keep_one_chain() {
    const TASKS: i64 = 4;
    const EACH: i64 = 25;
    for db in seeded().await {
        let other = match &db {
            Db::Sqlite(p) => Db::Sqlite(
                sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(4)
                    .connect_with((*p.connect_options()).clone())
                    .await
                    .unwrap(),
            ),
            Db::Postgres(p) => Db::Postgres(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(4)
                    .connect_with((*p.connect_options()).clone())
                    .await
                    .unwrap(),
            ),
        };
        at_once(&db, TASKS, |db, t| {
            let d = if t % 2 == 0 { db } else { other.clone() };
            async move {
                let who = common::staff(&format!("p{t}"));
                for i in 0..EACH {
                    let e = Entry {
                        actor: &who,
                        action: "race",
                        subject: &format!("{t}:{i}"),
                        before: None,
                        after: None,
                    };
                    audit::append(&d, &e, NOW + i).await.expect("append");
                }
            }
        })
        .await;
        let c = audit::verify(&db).await.unwrap();
        assert_eq!(
            c,
            audit::ChainCheck {
                rows: TASKS * EACH,
                broken: None
            },
            "{:?}",
            db.backend()
        );
    }
}

/// Two password changes from the same old hash, and two disables of the
/// same operator, run at the same moment: exactly one of each wins (the
/// precondition is in the UPDATE's WHERE), the other is a conflict.
#[tokio::test]
async fn concurrent_password_changes_and_disables_have_one_winner() {
    for db in seeded().await {
        let cli = Actor::command_line();
        let op = created_op(&db, "racer", Role::Cashier).await;
        let old = operators::credentials(&db, "racer")
            .await
            .unwrap()
            .expect("credentials")
            .password_phc;
        let (a, b) = tokio::join!(
            operators::change_password(&db, op.id, &old, "phc-a", "-", &cli, NOW),
            operators::change_password(&db, op.id, &old, "phc-b", "-", &cli, NOW),
        );
        assert_eq!(
            [a.is_ok(), b.is_ok()].iter().filter(|w| **w).count(),
            1,
            "{:?}: {a:?} / {b:?}",
            db.backend()
        );
        let (a, b) = tokio::join!(
            operators::disable(&db, "racer", &cli, NOW),
            operators::disable(&db, "racer", &cli, NOW),
        );
        assert_eq!(
            [a.is_ok(), b.is_ok()].iter().filter(|w| **w).count(),
            1,
            "{:?}: {a:?} / {b:?}",
            db.backend()
        );
        assert!(audit::verify(&db).await.unwrap().broken.is_none());
    }
}
