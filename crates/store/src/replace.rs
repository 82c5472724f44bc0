//! Meter replacement (issue 14 item 3; docs/OPERATIONS.md "Replacing a
//! meter"): a burnt or refitted meter is replaced by a new one in the same
//! room, on the same bus.
//!
//! One transaction ([`replace`]): the old meter leaves its bus and is
//! retired (its row and history stay readable); the new meter is inserted
//! with the old one's tariff, thresholds and password; the energy left in
//! the old meter is carried as the replacement's own ledger entry
//! (`energy_carried`: `delivered:<old>` → `in_flight:<new>`) and a delivery
//! job (`carry:<replacement>`) on the delivery queue, which the head-end
//! runs with the same read-back algorithm as a purchase; the bindings move
//! to the new meter; both meters get an event; the audit entry and the
//! registry version bump (the head-end stops polling the old meter and
//! starts polling the new one without a restart).
//!
//! Refused while energy is on its way to the old meter: an order charging,
//! delayed or refunding, a queued delivery job, or carried energy of an
//! earlier replacement not yet delivered. On PostgreSQL the old meter's row
//! is locked first and the guarded `UPDATE … WHERE` runs as a later
//! statement, so it sees every payment committed before the lock was
//! granted; a payment that comes later waits for the same row lock
//! (`orders::pay_in`) and then sees the replacement and moves its order to
//! the new meter. Either the replacement is refused or the order is
//! delivered to the new meter: never lost, never doubled.

use crate::audit::{self, Actor, Entry};
use crate::jobs::{self, Job};
use crate::meters::{DeliveryEvidence, MeterEvent, event_in};
use crate::orders::{self, Assignment, DELIVER_ATTEMPTS_MAX, DELIVER_PRIORITY, DELIVER_QUEUE};
use crate::{Backend, Db, Error, Result, Tx, ledger, on_db, on_tx, registry};
use domain::{CentiKwh, MeterAddress, MeterId, OrderId, RoomId};
use serde::Serialize;

/// Meter profiles a new meter may have (the import's list).
pub const PROFILES: &[&str] = import::PROFILES;

/// Longest reason, in characters.
pub const REASON_CHARS_MAX: usize = audit::NOTE_CHARS_MAX;

/// What staff asked for.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The meter taken out.
    pub old_meter_id: i64,
    /// The new meter's nameplate number.
    pub new_address: &'a str,
    /// The new meter's profile (import::PROFILES).
    pub profile: &'a str,
    /// The old meter's register as the technician read it off the display
    /// (0.01 kWh), when the head-end cannot read it any more.
    pub final_total_centikwh: Option<i64>,
    /// Why (mandatory).
    pub reason: &'a str,
}

/// Why a replacement was refused; nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No such meter.
    #[error("no such meter")]
    NoSuchMeter,
    /// The meter is retired (or replaced) already.
    #[error("this meter is retired or replaced already")]
    Retired,
    /// The meter is on no bus: the new one would have nowhere to go.
    #[error("this meter is on no bus")]
    NoBus,
    /// Energy is on its way to the meter.
    #[error(
        "an order or a delivery for this meter is in flight; wait until it is delivered or refunded"
    )]
    InFlight,
    /// The new number is not 12 digits.
    #[error("a meter number has exactly 12 digits")]
    BadAddress,
    /// The new number is registered already.
    #[error("a meter with this number is registered already")]
    AddressTaken,
    /// Unknown profile.
    #[error("unknown meter profile")]
    UnknownProfile,
    /// The bus carries its maximum of meters.
    #[error("the bus carries its maximum number of meters")]
    BusFull,
    /// The old meter's balance was never read: the energy to carry is unknown.
    #[error("the old meter's balance was never read; the energy to carry is unknown")]
    NeverRead,
    /// The typed final reading is below the last reading the head-end took.
    #[error("the final reading is below the meter's last reading")]
    FinalBelowLast,
    /// A reason is mandatory.
    #[error("write the reason for the replacement")]
    ReasonMissing,
    /// The reason is too long.
    #[error("the reason is too long: at most {REASON_CHARS_MAX} characters")]
    ReasonTooLong,
}

/// A replacement's failure.
#[derive(Debug, thiserror::Error)]
pub enum ReplaceError {
    /// Refused, with the reason.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] Error),
}

impl From<sqlx::Error> for ReplaceError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

/// What a replacement did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Replaced {
    /// The `meter_replacement` row.
    pub replacement_id: i64,
    /// The new meter's row id.
    pub new_meter_id: i64,
    /// Energy owed to the new meter (0.01 kWh).
    pub carried_centikwh: i64,
    /// Bindings moved to the new meter.
    pub bindings_moved: u64,
}

/// The energy to carry: the balance as last read, less what the meter used
/// since (the typed final register minus the last read register).
fn carried(
    remaining: Option<i64>,
    total: Option<i64>,
    final_total: Option<i64>,
) -> std::result::Result<i64, Refusal> {
    let remaining = remaining.ok_or(Refusal::NeverRead)?;
    let used = match (final_total, total) {
        (None, _) => 0,
        (Some(f), Some(t)) if f < t => return Err(Refusal::FinalBelowLast),
        (Some(f), Some(t)) => f - t,
        // A register never read: the final reading says nothing about use
        // since the balance was read.
        (Some(_), None) => return Err(Refusal::NeverRead),
    };
    Ok((remaining - used).max(0))
}

/// The condition under which energy is on its way to meter `$1`.
const IN_FLIGHT: &str = "(exists (select 1 from orders o where o.meter_id = $1
                     and o.state in ('charging', 'delayed', 'refunding'))
     or exists (select 1 from orders o join job j on j.dedup_key = 'deliver:' || cast(o.id as text)
                where o.meter_id = $1 and j.state = 'queued')
     or exists (select 1 from meter_replacement p where p.new_meter_id = $1
                and p.carried_centikwh > 0 and p.delivered_at_ms is null)
     or exists (select 1 from subsidy s where s.meter_id = $1 and s.delivered_at_ms is null))";

/// Locks meter `meter_id`'s row on PostgreSQL (SQLite's `BEGIN IMMEDIATE`
/// holds the database already). Statements after it see every transaction
/// that committed before the lock was granted.
pub(crate) async fn lock_meter(tx: &mut Tx, meter_id: i64) -> Result<bool> {
    if tx.backend() == Backend::Sqlite {
        return Ok(true);
    }
    let found: Option<i64> = on_tx!(tx, |c| sqlx::query_scalar(
        "select id from meter where id = $1 for update"
    )
    .bind(meter_id)
    .fetch_optional(c)
    .await?);
    Ok(found.is_some())
}

/// The meter that replaced `meter_id`, following later replacements (read
/// in `tx` after [`lock_meter`]).
pub(crate) async fn successor_in(tx: &mut Tx, meter_id: i64) -> Result<Option<i64>> {
    let mut at = meter_id;
    let mut found = None;
    // A chain longer than this would be a replacement every day for years.
    for _ in 0..64 {
        let next: Option<i64> = on_tx!(tx, |c| sqlx::query_scalar(
            "select new_meter_id from meter_replacement where old_meter_id = $1"
        )
        .bind(at)
        .fetch_optional(c)
        .await?);
        match next {
            Some(n) => {
                found = Some(n);
                at = n;
            }
            None => break,
        }
    }
    Ok(found)
}

#[derive(sqlx::FromRow)]
struct OldMeter {
    area_id: i64,
    room_id: i64,
    bus_id: Option<i64>,
    retired_at_ms: Option<i64>,
    address: String,
    unit_price_centifen_per_kwh: Option<i64>,
    low_balance_centikwh: i64,
    hoard_limit_centikwh: i64,
    password_hash: Option<String>,
    total_centikwh: Option<i64>,
    remaining_centikwh: Option<i64>,
    remaining_at_ms: Option<i64>,
}

/// Replaces meter `req.old_meter_id` by a new meter `req.new_address` (see
/// the module documentation). Audited as `meter_replaced`.
pub async fn replace(
    db: &Db,
    req: &Request<'_>,
    actor: &Actor,
    now_ms: i64,
) -> std::result::Result<Replaced, ReplaceError> {
    let reason = req.reason.trim();
    if reason.is_empty() {
        return Err(Refusal::ReasonMissing.into());
    }
    if reason.chars().count() > REASON_CHARS_MAX {
        return Err(Refusal::ReasonTooLong.into());
    }
    let address = MeterAddress::parse(req.new_address)
        .map_err(|_| Refusal::BadAddress)?
        .to_string();
    if !import::PROFILES.contains(&req.profile) {
        return Err(Refusal::UnknownProfile.into());
    }
    if req.final_total_centikwh.is_some_and(|f| f < 0) {
        return Err(Refusal::FinalBelowLast.into());
    }
    let old_id = req.old_meter_id;
    let mut tx = db.begin().await?;
    if !lock_meter(&mut tx, old_id).await? {
        return Err(Refusal::NoSuchMeter.into());
    }
    let old: Option<OldMeter> = on_tx!(&mut tx, |c| {
        sqlx::query_as(
        "select m.area_id, m.room_id, m.bus_id, m.retired_at_ms, m.address, m.unit_price_centifen_per_kwh,
                m.low_balance_centikwh, m.hoard_limit_centikwh, m.password_hash,
                s.total_centikwh, s.remaining_centikwh, s.remaining_at_ms
         from meter m left join meter_state s on s.meter_id = m.id where m.id = $1"
    )
    .bind(old_id)
    .fetch_optional(c)
    .await?
    });
    let old = old.ok_or(Refusal::NoSuchMeter)?;
    if old.retired_at_ms.is_some() {
        return Err(Refusal::Retired.into());
    }
    let bus_id = old.bus_id.ok_or(Refusal::NoBus)?;
    let carried_centikwh = carried(
        old.remaining_centikwh,
        old.total_centikwh,
        req.final_total_centikwh,
    )?;
    let taken: bool = on_tx!(&mut tx, |c| sqlx::query_scalar(
        "select exists (select 1 from meter where address = $1)"
    )
    .bind(&address)
    .fetch_one(c)
    .await?);
    if taken {
        return Err(Refusal::AddressTaken.into());
    }
    // The guard: a later statement than the lock, so at READ COMMITTED it
    // sees every payment committed before the lock was granted.
    let sql = format!(
        "update meter set bus_id = null, retired_at_ms = $2
         where id = $1 and retired_at_ms is null and bus_id is not null and not {IN_FLIGHT}"
    );
    let n = on_tx!(&mut tx, |c| sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
        .bind(old_id)
        .bind(now_ms)
        .execute(c)
        .await?
        .rows_affected());
    if n != 1 {
        return Err(Refusal::InFlight.into());
    }
    // The new meter takes the old one's place on its bus; the capacity is
    // checked by the insert itself.
    let new_id: Option<i64> = on_tx!(&mut tx, |c| {
        sqlx::query_scalar(
        "insert into meter (address, area_id, room_id, bus_id, profile, unit_price_centifen_per_kwh,
                            low_balance_centikwh, hoard_limit_centikwh, password_hash, created_at_ms)
         select $1, $2, $3, $4, $5, $6, $7, $8, $9, $10
         where (select count(*) from meter where bus_id = $4) < (select meter_capacity from bus where id = $4)
         returning id"
    )
    .bind(&address)
    .bind(old.area_id)
    .bind(old.room_id)
    .bind(bus_id)
    .bind(req.profile)
    .bind(old.unit_price_centifen_per_kwh)
    .bind(old.low_balance_centikwh)
    .bind(old.hoard_limit_centikwh)
    .bind(&old.password_hash)
    .bind(now_ms)
    .fetch_optional(c)
    .await
    .map_err(|e| match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            ReplaceError::Refused(Refusal::AddressTaken)
        }
        e => ReplaceError::Store(e.into()),
    })?
    });
    let new_id = new_id.ok_or(Refusal::BusFull)?;
    on_tx!(&mut tx, |c| sqlx::query(
        "insert into meter_state (meter_id, updated_at_ms) values ($1, $2)"
    )
    .bind(new_id)
    .bind(now_ms)
    .execute(c)
    .await?
    .rows_affected());
    let replacement_id: i64 = on_tx!(&mut tx, |c| {
        sqlx::query_scalar(
            "insert into meter_replacement (old_meter_id, new_meter_id, last_total_centikwh,
                last_remaining_centikwh, last_read_at_ms, final_total_centikwh, carried_centikwh,
                reason, operator_name, at_ms)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) returning id",
        )
        .bind(old_id)
        .bind(new_id)
        .bind(old.total_centikwh)
        .bind(old.remaining_centikwh)
        .bind(old.remaining_at_ms)
        .bind(req.final_total_centikwh)
        .bind(carried_centikwh)
        .bind(reason)
        .bind(&actor.name)
        .bind(now_ms)
        .fetch_one(c)
        .await?
    });
    if carried_centikwh > 0 {
        let t = domain::ledger::on_replaced(
            MeterId::new(old_id),
            MeterId::new(new_id),
            CentiKwh::new(carried_centikwh),
        );
        ledger::insert_for_replacement(&mut tx, replacement_id, &t, now_ms).await?;
        let key = carry_key(replacement_id);
        let payload = format!("{{\"replacement_id\":{replacement_id},\"meter_id\":{new_id}}}");
        jobs::enqueue(
            &mut tx,
            &jobs::NewJob {
                queue: DELIVER_QUEUE,
                dedup_key: Some(&key),
                payload: &payload,
                priority: DELIVER_PRIORITY,
                run_at_ms: now_ms,
                attempts_max: DELIVER_ATTEMPTS_MAX,
            },
            now_ms,
        )
        .await?;
    }
    let bindings_moved = on_tx!(&mut tx, |c| sqlx::query(
        "update binding set meter_id = $2 where meter_id = $1"
    )
    .bind(old_id)
    .bind(new_id)
    .execute(c)
    .await?
    .rows_affected());
    for (meter_id, kind, detail) in [
        (
            old_id,
            "replaced",
            format!("replaced by meter {address} (carried {carried_centikwh} centikWh)"),
        ),
        (
            new_id,
            "replaces",
            format!(
                "replaces meter {} (carried {carried_centikwh} centikWh)",
                old.address
            ),
        ),
    ] {
        event_in(
            &mut tx,
            &MeterEvent {
                meter_id,
                at_ms: now_ms,
                kind: kind.to_owned(),
                detail,
            },
        )
        .await?;
    }
    audit::append_tx(
        &mut tx,
        &Entry {
            actor,
            action: "meter_replaced",
            subject: &format!("meter:{}", old.address),
            before: Some(serde_json::json!({
                "meter_id": old_id,
                "address": old.address,
                "remaining_centikwh": old.remaining_centikwh,
                "total_centikwh": old.total_centikwh,
                "final_total_centikwh": req.final_total_centikwh,
            })),
            after: Some(serde_json::json!({
                "meter_id": new_id,
                "address": address,
                "profile": req.profile,
                "carried_centikwh": carried_centikwh,
                "bindings_moved": bindings_moved,
                "reason": reason,
            })),
        },
        now_ms,
    )
    .await?;
    registry::bump_version_tx(&mut tx).await?;
    tx.commit().await?;
    Ok(Replaced {
        replacement_id,
        new_meter_id: new_id,
        carried_centikwh,
        bindings_moved,
    })
}

/// The delivery job key of replacement `id`'s carried energy.
pub fn carry_key(id: i64) -> String {
    format!("carry:{id}")
}

/// A replacement as a meter's page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Replacement {
    /// Row id.
    pub id: i64,
    /// The meter taken out.
    pub old_meter_id: i64,
    /// Its number.
    pub old_address: String,
    /// The meter put in.
    pub new_meter_id: i64,
    /// Its number.
    pub new_address: String,
    /// Energy carried (0.01 kWh).
    pub carried_centikwh: i64,
    /// The typed final register, if any.
    pub final_total_centikwh: Option<i64>,
    /// When the new meter confirmed the carried energy.
    pub delivered_at_ms: Option<i64>,
    /// Why.
    pub reason: String,
    /// Who.
    pub operator_name: String,
    /// When.
    pub at_ms: i64,
}

/// The replacement that took meter `meter_id` out, and the one that put it
/// in: (as predecessor's successor, as successor of its predecessor).
pub async fn of_meter(
    db: &Db,
    meter_id: i64,
) -> Result<(Option<Replacement>, Option<Replacement>)> {
    let rows: Vec<Replacement> = on_db!(db, |p| {
        sqlx::query_as(
        "select r.id, r.old_meter_id, o.address as old_address, r.new_meter_id, n.address as new_address,
                r.carried_centikwh, r.final_total_centikwh, r.delivered_at_ms, r.reason, r.operator_name, r.at_ms
         from meter_replacement r join meter o on o.id = r.old_meter_id join meter n on n.id = r.new_meter_id
         where r.old_meter_id = $1 or r.new_meter_id = $1"
    )
    .bind(meter_id)
    .fetch_all(p)
    .await?
    });
    let replaced_by = rows.iter().find(|r| r.old_meter_id == meter_id).cloned();
    let replaces = rows.into_iter().find(|r| r.new_meter_id == meter_id);
    Ok((replaced_by, replaces))
}

// ---- the head-end's side: delivering the carried energy ----

/// What the delivery worker needs to deliver a replacement's energy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CarryTarget {
    /// The replacement.
    pub replacement_id: i64,
    /// The new meter.
    pub meter_id: MeterId,
    /// Its address.
    pub address: String,
    /// Its room (the recharge customer number).
    pub room_id: RoomId,
    /// Energy to deliver.
    pub centikwh: CentiKwh,
    /// The purchase number, once assigned.
    pub purchase_seq: Option<i64>,
    /// Delivered already.
    pub delivered: bool,
    /// When the replacement was made (the "paid" instant of this energy).
    pub at_ms: i64,
}

/// The carried energy of replacement `id`.
pub async fn carry_target(db: &Db, id: i64) -> Result<Option<CarryTarget>> {
    type Row = (i64, String, i64, i64, Option<i64>, Option<i64>, i64);
    let row: Option<Row> = on_db!(db, |p| sqlx::query_as(
        "select r.new_meter_id, m.address, m.room_id, r.carried_centikwh, r.purchase_seq,
                    r.delivered_at_ms, r.at_ms
             from meter_replacement r join meter m on m.id = r.new_meter_id where r.id = $1"
    )
    .bind(id)
    .fetch_optional(p)
    .await?);
    Ok(row.map(
        |(meter_id, address, room_id, centikwh, purchase_seq, delivered, at_ms)| CarryTarget {
            replacement_id: id,
            meter_id: MeterId::new(meter_id),
            address,
            room_id: RoomId::new(room_id),
            centikwh: CentiKwh::new(centikwh),
            purchase_seq,
            delivered: delivered.is_some() || centikwh == 0,
            at_ms,
        },
    ))
}

/// Assigns the carried energy its purchase number on the new meter, like
/// [`orders::assign_purchase_seq`] (under the meter's row lock, from the
/// meter's read count). The carried energy goes before any order of the
/// new meter (those wait for it), so it only waits for an order that holds
/// an unsettled number, which cannot happen unless staff intervened.
pub async fn assign_carry_seq(db: &Db, id: i64) -> Result<Assignment> {
    let mut tx = db.begin().await?;
    let meter_id: Option<i64> = on_tx!(&mut tx, |c| sqlx::query_scalar(
        "select new_meter_id from meter_replacement where id = $1"
    )
    .bind(id)
    .fetch_optional(c)
    .await?);
    let meter_id = meter_id.ok_or(Error::NotFound("replacement"))?;
    lock_meter(&mut tx, meter_id).await?;
    let (seq, delivered): (Option<i64>, Option<i64>) = on_tx!(&mut tx, |c| sqlx::query_as(
        "select purchase_seq, delivered_at_ms from meter_replacement where id = $1"
    )
    .bind(id)
    .fetch_one(c)
    .await?);
    if delivered.is_some() {
        return Ok(Assignment::NotDeliverable(None));
    }
    if let Some(s) = seq {
        return Ok(Assignment::Assigned(s));
    }
    let holder: Option<i64> = on_tx!(&mut tx, |c| sqlx::query_scalar(
        "select purchase_seq from orders where meter_id = $1 and purchase_seq is not null
           and state in ('charging', 'delayed') order by purchase_seq limit 1"
    )
    .bind(meter_id)
    .fetch_optional(c)
    .await?);
    if let Some(s) = holder {
        return Ok(Assignment::Wait(format!(
            "waiting for purchase {s} of this meter to settle"
        )));
    }
    let sql = match tx.backend() {
        Backend::Sqlite => {
            "update meter set purchase_seq_last = 1 + max(purchase_seq_last,
                    coalesce((select purchase_count from meter_state where meter_id = meter.id), 0))
             where id = $1 returning purchase_seq_last"
        }
        Backend::Postgres => {
            "update meter set purchase_seq_last = 1 + greatest(purchase_seq_last,
                    coalesce((select purchase_count from meter_state where meter_id = meter.id), 0))
             where id = $1 returning purchase_seq_last"
        }
    };
    let seq: i64 = on_tx!(&mut tx, |c| sqlx::query_scalar(sql)
        .bind(meter_id)
        .fetch_one(c)
        .await?);
    let n = on_tx!(&mut tx, |c| sqlx::query(
        "update meter_replacement set purchase_seq = $2
         where id = $1 and purchase_seq is null and delivered_at_ms is null"
    )
    .bind(id)
    .bind(seq)
    .execute(c)
    .await?
    .rows_affected());
    if n != 1 {
        return Err(Error::Conflict(format!(
            "replacement {id} changed concurrently"
        )));
    }
    tx.commit().await?;
    Ok(Assignment::Assigned(seq))
}

/// Records the new meter's confirmation of the carried energy: the
/// replacement delivered with its `carry_delivered` ledger entry, the job,
/// the meter state and an event, and wakes the meter's waiting orders —
/// one transaction, fenced by the job's lease. Returns false when it was
/// delivered already.
pub async fn complete_carry(
    db: &Db,
    id: i64,
    job: &Job,
    meter_id: MeterId,
    evidence: DeliveryEvidence,
    now_ms: i64,
) -> Result<bool> {
    let mut tx = db.begin().await?;
    jobs::complete(&mut tx, job, now_ms).await?;
    let row: Option<(Option<i64>, i64)> = on_tx!(&mut tx, |c| sqlx::query_as(
        "select purchase_seq, carried_centikwh from meter_replacement where id = $1"
    )
    .bind(id)
    .fetch_optional(c)
    .await?);
    let (seq, carried) = row.ok_or(Error::NotFound("replacement"))?;
    if seq != Some(evidence.purchase_count) {
        return Err(Error::Conflict(format!(
            "replacement {id} holds purchase {seq:?}, the meter's evidence is for {}",
            evidence.purchase_count
        )));
    }
    let n = on_tx!(&mut tx, |c| {
        sqlx::query(
        "update meter_replacement set delivered_at_ms = $2 where id = $1 and delivered_at_ms is null"
    )
    .bind(id)
    .bind(now_ms)
    .execute(c)
    .await?
    .rows_affected()
    });
    let changed = n == 1;
    if changed {
        let t = domain::ledger::on_carry_delivered(meter_id, CentiKwh::new(carried));
        ledger::insert_for_replacement(&mut tx, id, &t, now_ms).await?;
        event_in(
            &mut tx,
            &MeterEvent {
                meter_id: meter_id.get(),
                at_ms: now_ms,
                kind: "delivered".to_owned(),
                detail: format!(
                    "carried energy of replacement {id}, purchase {}",
                    evidence.purchase_count
                ),
            },
        )
        .await?;
    }
    on_tx!(&mut tx, |c| sqlx::query(
        "update meter_state set purchase_count = $2,
                remaining_centikwh = coalesce($3, remaining_centikwh),
                remaining_at_ms = case when $3 is null then remaining_at_ms else $4 end,
                online = true, missed_polls = 0, last_seen_at_ms = $4, updated_at_ms = $4
         where meter_id = $1"
    )
    .bind(meter_id.get())
    .bind(evidence.purchase_count)
    .bind(evidence.remaining_centikwh)
    .bind(now_ms)
    .execute(c)
    .await?
    .rows_affected());
    // Orders of the new meter waited for this energy.
    let keys = orders::sibling_delivery_keys(&mut tx, meter_id, OrderId::new(0)).await?;
    jobs::wake(&mut tx, &keys, now_ms).await?;
    tx.commit().await?;
    Ok(changed)
}

/// Stops a carried-energy delivery that needs staff (a count gap, an
/// unreadable outcome, a refusal by the meter): an event on the new meter
/// and the job dead-lettered with the reason; when `unapplied_seq` is the
/// number a refused recharge held (the read-back showed it not applied),
/// the number is given back. The meter's orders keep waiting until staff
/// settle it and re-queue the job ([`jobs::revive`]). Fenced.
#[expect(
    clippy::too_many_arguments,
    reason = "the delivery outcome's fields, as refuse_delivery"
)]
pub async fn flag_carry(
    db: &Db,
    id: i64,
    job: &Job,
    meter_id: MeterId,
    kind: &str,
    detail: &str,
    unapplied_seq: Option<i64>,
    now_ms: i64,
) -> Result<()> {
    let mut tx = db.begin().await?;
    jobs::bury_in(&mut tx, job, &format!("{kind}: {detail}"), now_ms).await?;
    event_in(
        &mut tx,
        &MeterEvent {
            meter_id: meter_id.get(),
            at_ms: now_ms,
            kind: kind.to_owned(),
            detail: format!("carried energy of replacement {id}: {detail}"),
        },
    )
    .await?;
    if let Some(seq) = unapplied_seq {
        let n = on_tx!(&mut tx, |c| sqlx::query(
            "update meter_replacement set purchase_seq = null
             where id = $1 and purchase_seq = $2 and delivered_at_ms is null"
        )
        .bind(id)
        .bind(seq)
        .execute(c)
        .await?
        .rows_affected());
        let m = on_tx!(&mut tx, |c| {
            sqlx::query(
            "update meter set purchase_seq_last = $2 - 1 where id = $1 and purchase_seq_last = $2"
        )
        .bind(meter_id.get())
        .bind(seq)
        .execute(c)
        .await?
        .rows_affected()
        });
        if n != 1 || m != 1 {
            return Err(Error::Conflict(format!(
                "purchase {seq} of replacement {id} cannot be given back"
            )));
        }
    }
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::{Refusal, carried};

    #[test]
    fn carried_energy_is_the_balance_less_use_since_the_last_read() {
        assert_eq!(carried(Some(1500), Some(9000), None), Ok(1500));
        assert_eq!(carried(Some(1500), Some(9000), Some(9200)), Ok(1300));
        assert_eq!(carried(Some(1500), Some(9000), Some(99_000)), Ok(0));
        assert_eq!(carried(Some(-40), Some(9000), None), Ok(0));
        assert_eq!(
            carried(Some(1500), Some(9000), Some(8999)),
            Err(Refusal::FinalBelowLast)
        );
        assert_eq!(carried(None, Some(9000), None), Err(Refusal::NeverRead));
        assert_eq!(carried(Some(10), None, Some(5)), Err(Refusal::NeverRead));
    }
}
