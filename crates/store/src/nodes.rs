//! Node identity: which process is which, so a restarted process can take
//! back at once the job leases of its own dead incarnation instead of
//! waiting for them to run out (issue 9, item 8).
//!
//! A process runs as node `<name>` only while it holds that name's lock:
//! on PostgreSQL a session advisory lock on a connection kept out of the
//! pool, on SQLite an exclusive lock on a file beside the database. The
//! database or the kernel drops the lock the moment the process dies
//! (kill -9 included), so holding it proves that no other live process is
//! `<name>` — and so every lease `<name>#…` that is not ours belongs to a
//! dead incarnation. Two processes started with the same name get
//! `<name>`, `<name>-2`, … instead of sharing one.

use crate::{Db, Error, Result};
use sqlx::Connection;

/// Most names tried (`<name>`, `<name>-2`, …, `<name>-16`).
const NAMES_MAX: u32 = 16;

/// The lock that makes this process node `name`; dropped with the process.
#[derive(Debug)]
pub struct NodeLock {
    /// The node name this process holds.
    pub name: String,
    /// This process's incarnation: the worker name in job leases is
    /// `<name>#<incarnation>`.
    pub incarnation: String,
    _hold: Hold,
}

#[derive(Debug)]
enum Hold {
    Postgres(Box<sqlx::PgConnection>),
    File(#[allow(dead_code)] std::fs::File),
    Memory,
}

impl NodeLock {
    /// The worker name for job leases: `<name>#<incarnation>`.
    pub fn worker(&self) -> String {
        format!("{}#{}", self.name, self.incarnation)
    }

    /// Whether the lock is still held (PostgreSQL: the session is alive).
    pub async fn check(&mut self) -> bool {
        match &mut self._hold {
            Hold::Postgres(c) => c.ping().await.is_ok(),
            Hold::File(_) | Hold::Memory => true,
        }
    }
}

/// Takes the first free node name of `base`, `base-2`, …; `now_ms` makes
/// the incarnation unique.
pub async fn acquire(db: &Db, base: &str, now_ms: i64) -> Result<NodeLock> {
    let incarnation = format!("{now_ms:x}{:04x}", rand::random::<u16>());
    for i in 1..=NAMES_MAX {
        let name = if i == 1 {
            base.to_owned()
        } else {
            format!("{base}-{i}")
        };
        // The own name is retried briefly: a process killed a moment ago
        // may still hold it until its database session is torn down.
        let tries = if i == 1 { 10 } else { 1 };
        for t in 0..tries {
            if let Some(hold) = try_hold(db, &name).await? {
                return Ok(NodeLock {
                    name,
                    incarnation,
                    _hold: hold,
                });
            }
            if t + 1 < tries {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
    Err(Error::Conflict(format!(
        "{NAMES_MAX} processes already run as node {base}; set a distinct [headend] worker_id"
    )))
}

async fn try_hold(db: &Db, name: &str) -> Result<Option<Hold>> {
    match db {
        Db::Postgres(p) => {
            let mut conn = p.acquire().await?.detach();
            let got: bool =
                sqlx::query_scalar("select pg_try_advisory_lock(hashtext('dormwatt-node:' || $1))")
                    .bind(name)
                    .fetch_one(&mut conn)
                    .await?;
            if got {
                Ok(Some(Hold::Postgres(Box::new(conn))))
            } else {
                let _ = conn.close().await;
                Ok(None)
            }
        }
        Db::Sqlite(p) => {
            let opts = p.connect_options();
            let file = opts.get_filename();
            let s = file.to_string_lossy();
            if s.is_empty() || s.contains(":memory:") {
                return Ok(Some(Hold::Memory));
            }
            let safe: String = name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let path = format!("{s}.node-{safe}.lock");
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| Error::Conflict(format!("node lock {path}: {e}")))?;
            match f.try_lock() {
                Ok(()) => Ok(Some(Hold::File(f))),
                Err(std::fs::TryLockError::WouldBlock) => Ok(None),
                Err(std::fs::TryLockError::Error(e)) => {
                    Err(Error::Conflict(format!("node lock {path}: {e}")))
                }
            }
        }
    }
}
