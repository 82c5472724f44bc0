//! Migrations are append-only (docs/ARCHITECTURE.md): the committed
//! manifest pins every embedded migration's version and checksum, a
//! database migrated under the old numbering of the covering index (0002)
//! still migrates, and any other foreign or edited migration is refused
//! before anything runs. Both backends.

mod common;

use common::exec;
use store::{Backend, Db, Error, testing};

const MANIFEST: &str = include_str!("../migrations/MANIFEST");

/// The manifest's lines for one backend (`[sqlite]` / `[postgres]`
/// sections), comments and blank lines dropped.
fn manifest_section(name: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in MANIFEST.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            inside = line == format!("[{name}]");
            continue;
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[test]
fn embedded_migrations_match_the_committed_manifest() {
    for (backend, name) in [(Backend::Sqlite, "sqlite"), (Backend::Postgres, "postgres")] {
        let embedded = Db::migration_manifest(backend);
        let pinned = manifest_section(name);
        // An applied migration never changes: every pinned line is still
        // embedded exactly, in order; a new migration appends its line.
        assert_eq!(
            embedded, pinned,
            "migrations/{name} no longer match crates/store/migrations/MANIFEST.\n\
             A new migration: append its line below. An edited, renumbered or removed one: \
             don't — add a new migration instead.\nEmbedded now:\n{embedded}"
        );
    }
}

async fn versions(db: &Db) -> Vec<i64> {
    store::on_db!(db, |p| sqlx::query_scalar::<_, i64>(
        "select version from _sqlx_migrations order by version"
    )
    .fetch_all(p)
    .await)
    .unwrap()
}

#[tokio::test]
async fn a_database_with_the_covering_index_applied_as_0002_still_migrates() {
    for db in testing::all().await.unwrap() {
        // What a database migrated before the renumbering holds: the same
        // migration (same text, same checksum) recorded as version 2.
        exec(
            &db,
            "update _sqlx_migrations set version = 2 where version = 3",
        )
        .await;
        assert!(versions(&db).await.contains(&2));
        db.migrate()
            .await
            .unwrap_or_else(|e| panic!("{:?}: {e}", db.backend()));
        let v = versions(&db).await;
        assert!(
            !v.contains(&2) && v.contains(&3),
            "{:?}: {v:?}",
            db.backend()
        );
        // And a second run changes nothing.
        db.migrate().await.unwrap();
        assert_eq!(versions(&db).await, v);
    }
}

#[tokio::test]
async fn an_edited_or_unknown_applied_migration_is_refused_by_name() {
    for db in testing::all().await.unwrap() {
        exec(
            &db,
            "update _sqlx_migrations set checksum = checksum || checksum where version = 4",
        )
        .await;
        let e = db.migrate().await.unwrap_err();
        assert!(
            matches!(&e, Error::ForeignMigration { version: 4, why, .. } if why.contains("different")),
            "{:?}: {e}",
            db.backend()
        );
        assert!(e.to_string().contains("migration 4"), "{e}");
    }
    for db in testing::all().await.unwrap() {
        // A migration from another branch that this build never had.
        exec(
            &db,
            "insert into _sqlx_migrations (version, description, success, checksum, execution_time)
             select 2, 'from another branch', true, checksum, 0 from _sqlx_migrations where version = 1",
        )
        .await;
        let e = db.migrate().await.unwrap_err();
        assert!(
            matches!(&e, Error::ForeignMigration { version: 2, why, .. } if why.contains("not know")),
            "{:?}: {e}",
            db.backend()
        );
        assert!(e.to_string().contains("from another branch"), "{e}");
    }
}
