//! A meter's verification password reset by staff (issue 13 item 8), under
//! the ownership model of docs/SECURITY.md: whoever knows the password
//! decides who is bound. Staff set a new random password (made and hashed
//! by the caller, handed to the room's occupant), and in the same
//! transaction every binder — none of whom has proven the new password —
//! is unbound and told so in the inbox, and the audit row is written (the
//! number of binders, never the password or its hash).
//!
//! The reset names the hash it replaces and changes the row only `where`
//! it is still that one (row count checked): of two operators resetting
//! the same meter at once one wins, and the other is told to look again
//! instead of handing out a password that no longer holds.

use crate::audit::{self, Actor, Entry};
use crate::message::{self, MessageArgs};
use crate::{Db, Error, Result, on_db, on_tx};

/// A meter as the reset page shows it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ResetTarget {
    /// Meter row id.
    pub meter_id: i64,
    /// 12-digit nameplate number.
    pub address: String,
    /// Area row id.
    pub area_id: i64,
    /// Area name (zh).
    pub area_name_zh: String,
    /// Area name (en).
    pub area_name_en: String,
    /// Building row id.
    pub building_id: i64,
    /// Building name (zh).
    pub building_name_zh: String,
    /// Building name (en).
    pub building_name_en: String,
    /// Room number.
    pub room: String,
    /// Students bound to it now.
    pub binders: i64,
    /// The stored hash (`None`: factory default), for [`reset`]'s check.
    pub password_hash: Option<String>,
}

/// The meter `meter_id` with its place and binders.
pub async fn target(db: &Db, meter_id: i64) -> Result<Option<ResetTarget>> {
    Ok(on_db!(db, |p| sqlx::query_as(
        "select m.id as meter_id, m.address, m.area_id, a.name_zh as area_name_zh,
                a.name_en as area_name_en, b.id as building_id, b.name_zh as building_name_zh,
                b.name_en as building_name_en, r.number as room,
                (select count(*) from binding bd where bd.meter_id = m.id) as binders,
                m.password_hash
         from meter m join area a on a.id = m.area_id join room r on r.id = m.room_id
         join building b on b.id = r.building_id where m.id = $1"
    )
    .bind(meter_id)
    .fetch_optional(p)
    .await?))
}

/// What a reset did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reset {
    /// Binders unbound (each told in the inbox).
    pub unbound: u64,
}

/// The `Conflict` reason when the password changed since it was read.
pub const CHANGED_MEANWHILE: &str = "the meter's password changed meanwhile";

/// Sets meter `meter_id`'s password hash to `new_hash` if it still is
/// `expected` (`None`: the factory default), unbinds and tells every binder,
/// and audits it (`meter_password_reset`) — all in one transaction.
pub async fn reset(
    db: &Db,
    meter_id: i64,
    expected: Option<&str>,
    new_hash: &str,
    actor: &Actor,
    now_ms: i64,
) -> Result<Reset> {
    let mut tx = db.begin().await?;
    if !crate::students::set_meter_password_in(&mut tx, meter_id, expected, new_hash).await? {
        drop(tx);
        return Err(Error::Conflict(CHANGED_MEANWHILE.to_owned()));
    }
    let binders: Vec<i64> = on_tx!(&mut tx, |c| sqlx::query_scalar(
        "select student_id from binding where meter_id = $1 order by student_id"
    )
    .bind(meter_id)
    .fetch_all(c)
    .await?);
    let place = message::place_in(&mut tx, domain::MeterId::new(meter_id)).await?;
    for s in &binders {
        message::insert_in(
            &mut tx,
            *s,
            &MessageArgs::PasswordResetByStaff {
                place: place.clone(),
            },
            None,
            now_ms,
        )
        .await?;
    }
    let unbound = on_tx!(&mut tx, |c| sqlx::query(
        "delete from binding where meter_id = $1"
    )
    .bind(meter_id)
    .execute(c)
    .await?
    .rows_affected());
    // A student whose default it was gets their oldest meter as default.
    crate::students::restore_defaults_in(&mut tx).await?;
    audit::append_and_commit(
        tx,
        &Entry {
            actor,
            action: "meter_password_reset",
            subject: &format!("meter:{}", place.meter),
            before: Some(serde_json::json!({
                "binders": binders.len(),
                "factory_default": expected.is_none(),
            })),
            after: Some(serde_json::json!({ "unbound": unbound, "told": binders.len() })),
        },
        now_ms,
    )
    .await?;
    Ok(Reset { unbound })
}
