//! Move-out settlement (issue 13 item 6, policy in docs/MOVE-OUT.md): the
//! unused balance is energy inside the room's meter, so it stays there for
//! the room's next occupant. Settling a move-out ends every binding of the
//! meter (the leaving students no longer see or buy for it), records the
//! balance as last read with the operator and a note, and writes the audit
//! entry — one transaction. No money and no energy move, so the ledger is
//! untouched (energy delivered to the meter stays `delivered:<meter>`).

use crate::{Db, Error, Result, audit, on_tx};
use serde::Serialize;

/// Longest note, in characters.
pub const NOTE_CHARS_MAX: usize = audit::NOTE_CHARS_MAX;

/// What a settlement recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Settlement {
    /// The meter's row id.
    pub meter_id: i64,
    /// The meter's number.
    pub address: String,
    /// Its balance as last read, 0.01 kWh (`None`: never read).
    pub remaining_centikwh: Option<i64>,
    /// When that was read.
    pub remaining_at_ms: Option<i64>,
    /// Bindings ended.
    pub unbound_students: i64,
}

/// Why a settlement was refused; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No meter with that number.
    #[error("no such meter")]
    NoSuchMeter,
    /// Nobody has the meter bound: nothing to settle.
    #[error("nobody has this meter bound; there is nothing to settle")]
    NobodyBound,
    /// A settlement needs a note (the room, the students, the date).
    #[error("write a note: who moved out, and when")]
    NoteMissing,
    /// The note is too long.
    #[error("the note is too long: at most {NOTE_CHARS_MAX} characters")]
    NoteTooLong,
}

/// A settlement's failure.
#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    /// Refused, with the reason.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] Error),
}

/// The area and building of the meter numbered `address` (the console
/// asks `can` for that place first), with the meter's row id.
pub async fn place(db: &Db, address: &str) -> Result<Option<(i64, i64, i64)>> {
    Ok(crate::on_db!(db, |p| sqlx::query_as(
        "select m.id, m.area_id, r.building_id from meter m join room r on r.id = m.room_id
         where m.address = $1"
    )
    .bind(address)
    .fetch_optional(p)
    .await?))
}

/// Settles the move-out of the room of meter `address`: its bindings end,
/// the balance stays in the meter for the next occupant. Guarded: the
/// bindings are deleted by the statement that counts them, so of two
/// settlements at once one unbinds and the other finds
/// [`Refusal::NobodyBound`].
pub async fn settle(
    db: &Db,
    address: &str,
    actor: &audit::Actor,
    note: &str,
    now_ms: i64,
) -> Result<Settlement, SettleError> {
    let note = audit::checked_note(note, Refusal::NoteMissing, Refusal::NoteTooLong)?;
    let mut tx = db.begin().await?;
    let meter: Option<(i64, Option<i64>, Option<i64>)> = on_tx!(&mut tx, |c| sqlx::query_as(
        "select m.id, s.remaining_centikwh, s.remaining_at_ms
         from meter m left join meter_state s on s.meter_id = m.id where m.address = $1"
    )
    .bind(address)
    .fetch_optional(c)
    .await
    .map_err(Error::from)?);
    let Some((meter_id, remaining, remaining_at)) = meter else {
        return Err(Refusal::NoSuchMeter.into());
    };
    let students: Vec<i64> = on_tx!(&mut tx, |c| sqlx::query_scalar(
        "delete from binding where meter_id = $1 returning student_id"
    )
    .bind(meter_id)
    .fetch_all(c)
    .await
    .map_err(Error::from)?);
    if students.is_empty() {
        return Err(Refusal::NobodyBound.into());
    }
    // A student who lost their default meter gets their oldest other one.
    for student in &students {
        on_tx!(&mut tx, |c| sqlx::query(
            "update binding set is_default = true
             where id = (select min(id) from binding where student_id = $1)
               and not exists (select 1 from binding where student_id = $1 and is_default)"
        )
        .bind(student)
        .execute(c)
        .await
        .map_err(Error::from)?
        .rows_affected());
    }
    let n = i64::try_from(students.len()).unwrap_or(i64::MAX);
    on_tx!(&mut tx, |c| sqlx::query(
        "insert into move_out (meter_id, remaining_centikwh, remaining_at_ms, unbound_students,
                               operator_id, operator_name, note, at_ms)
         values ($1, $2, $3, $4, $5, $6, $7, $8)"
    )
    .bind(meter_id)
    .bind(remaining)
    .bind(remaining_at)
    .bind(n)
    .bind(actor.operator_id)
    .bind(&actor.name)
    .bind(note)
    .bind(now_ms)
    .execute(c)
    .await
    .map_err(Error::from)?
    .rows_affected());
    audit::append_and_commit(
        tx,
        &audit::Entry {
            actor,
            action: "move_out_settled",
            subject: &format!("meter:{address}"),
            before: Some(serde_json::json!({
                "bound_students": students,
                "remaining_centikwh": remaining,
                "remaining_at_ms": remaining_at,
            })),
            after: Some(serde_json::json!({
                "bound_students": [],
                "balance": "stays in the meter for the room's next occupant",
                "note": note,
            })),
        },
        now_ms,
    )
    .await?;
    Ok(Settlement {
        meter_id,
        address: address.to_owned(),
        remaining_centikwh: remaining,
        remaining_at_ms: remaining_at,
        unbound_students: n,
    })
}
