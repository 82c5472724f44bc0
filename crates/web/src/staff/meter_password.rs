//! A meter's verification password reset by staff (issue 13 item 8):
//! `GET /staff/meters/{id}/password` shows the meter, its binders and a
//! confirm form; the POST sets a new random six-digit password, shows it
//! once (to hand to the room's occupant after checking their ID and room
//! assignment), unbinds every binder and tells each in the inbox, and
//! audits it without the password (`store::meter_reset`). Guarded by
//! `Action::ResetMeterPassword` at the meter's building.

use super::{Console, CurrentOperator, IdPost, StaffError, StaffResult, html};
use crate::AppState;
use crate::i18n::Lang;
use crate::pages::room_place;
use askama::Template;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use domain::staff::{Action, Place};
use domain::{AreaId, BuildingId};
use store::meter_reset::{self, ResetTarget};

/// The page, before and after the reset.
#[derive(Template)]
#[template(path = "staff/meter_password.html")]
struct ResetPage {
    l: Lang,
    frame: super::Frame,
    id: i64,
    meter: String,
    place: String,
    binders: i64,
    /// The new password, shown once after the reset.
    password: Option<String>,
    unbound: i64,
    error: Option<String>,
}

/// The meter of the URL, when the operator may reset it at its building
/// (the handler's gate asked for the console).
async fn guarded(
    state: &AppState,
    op: &CurrentOperator,
    id: i64,
) -> Result<ResetTarget, StaffError> {
    let Some(t) = meter_reset::target(state.db(), id).await? else {
        return Err(StaffError::NotFound);
    };
    op.require(
        state,
        Action::ResetMeterPassword,
        Place::Building(AreaId::new(t.area_id), BuildingId::new(t.building_id)),
    )
    .await?;
    Ok(t)
}

fn page(op: &CurrentOperator, t: &ResetTarget) -> ResetPage {
    let l = op.l;
    ResetPage {
        l,
        frame: op.frame("staff-meter-password-title", ""),
        id: t.meter_id,
        meter: t.address.clone(),
        place: room_place(
            l,
            (&t.area_name_zh, &t.area_name_en),
            (&t.building_name_zh, &t.building_name_en),
            &t.room,
            " · ",
        ),
        binders: t.binders,
        password: None,
        unbound: 0,
        error: None,
    }
}

/// `GET /staff/meters/{id}/password`.
pub async fn confirm(
    State(state): State<AppState>,
    crate::pages::PathId(id): crate::pages::PathId,
    Console(op): Console<{ Action::ResetMeterPassword as u8 }>,
) -> StaffResult {
    let t = guarded(&state, &op, id).await?;
    html(&page(&op, &t))
}

/// A random six-digit password other than the factory default.
fn new_password() -> String {
    loop {
        let p = format!("{:06}", rand::random::<u32>() % 1_000_000);
        if p != domain::password::DEFAULT_PASSWORD {
            return p;
        }
    }
}

/// `POST /staff/meters/{id}/password`: resets and shows the new password
/// once (`Cache-Control: no-store`).
pub async fn reset(
    State(state): State<AppState>,
    IdPost { id, op }: IdPost<{ Action::ResetMeterPassword as u8 }>,
) -> StaffResult {
    let t = guarded(&state, &op, id).await?;
    let password = new_password();
    let hash = domain::password::hash(&password, rand::random())
        .map_err(|e| StaffError::Store(store::Error::Corrupt(e.to_string())))?;
    let now = state.settings().staff.clock.now_ms();
    let mut p = page(&op, &t);
    match meter_reset::reset(
        state.db(),
        t.meter_id,
        t.password_hash.as_deref(),
        &hash,
        &op.actor(),
        now,
    )
    .await
    {
        Ok(r) => {
            p.password = Some(password);
            p.unbound = i64::try_from(r.unbound).unwrap_or(i64::MAX);
            p.binders = 0;
        }
        Err(store::Error::Conflict(_)) => {
            p.error = Some(op.l.t("staff-meter-password-changed"));
            let mut r = html(&p)?;
            *r.status_mut() = StatusCode::CONFLICT;
            return Ok(r);
        }
        Err(e) => return Err(e.into()),
    }
    let mut r = html(&p)?;
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}
