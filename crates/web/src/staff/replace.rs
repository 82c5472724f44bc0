//! Meter replacement in the console (issue 14 item 3; docs/OPERATIONS.md
//! "Replacing a meter"): `GET /staff/meters/{id}/replace` shows the meter,
//! its last reading and the form (new number, profile, the final reading a
//! technician typed when the old meter cannot be read, a mandatory reason,
//! a confirmation box); the POST replaces it (`store::replace::replace`:
//! one transaction, audited as `meter_replaced`) and redirects to the new
//! meter's page. Guarded by `Action::ReplaceMeter` at the meter's building.

use super::meters::{MeterPanel, panel, place};
use super::{Console, CurrentOperator, StaffError, StaffForm, StaffResult, html_with_status};
use crate::AppState;
use crate::i18n::Lang;
use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect};
use domain::staff::Action;
use serde::Deserialize;
use store::lookup::MeterHit;
use store::replace::{Refusal, ReplaceError, Request};

/// The page.
#[derive(Template)]
#[template(path = "staff/replace.html")]
struct ReplacePage {
    l: Lang,
    frame: super::Frame,
    m: MeterPanel,
    /// The register as last read, kWh, or a dash.
    last_total: String,
    profiles: Vec<&'static str>,
    form: ReplaceForm,
    error: Option<String>,
}

/// The form.
#[derive(Debug, Default, Deserialize)]
pub struct ReplaceForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    profile: String,
    /// kWh with at most two decimals; empty when the meter was read.
    #[serde(default, rename = "final")]
    final_kwh: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    confirm: String,
}

crate::pages::csrf_forms!(ReplaceForm);

/// The meter of the URL, when the operator may replace it at its building.
async fn guarded(state: &AppState, op: &CurrentOperator, id: i64) -> Result<MeterHit, StaffError> {
    let Some(h) = store::lookup::by_id(state.db(), id).await? else {
        return Err(StaffError::NotFound);
    };
    op.require(state, Action::ReplaceMeter, place(&h)).await?;
    Ok(h)
}

async fn render(
    state: &AppState,
    op: &CurrentOperator,
    h: &MeterHit,
    form: ReplaceForm,
    error: Option<String>,
) -> StaffResult {
    let l = op.l;
    let st = store::meters::state(state.db(), h.meter_id.get()).await?;
    let last_total = st
        .and_then(|s| s.total_centikwh)
        .map_or_else(|| "—".to_owned(), |c| c.to_string());
    let failed = error.is_some();
    html_with_status(
        &ReplacePage {
            l,
            frame: op.frame("staff-replace-title", ""),
            m: panel(state, l, h).await?,
            last_total,
            profiles: store::replace::PROFILES.to_vec(),
            form,
            error,
        },
        failed,
    )
}

/// `GET /staff/meters/{id}/replace`.
pub async fn page(
    State(state): State<AppState>,
    crate::pages::PathId(id): crate::pages::PathId,
    Console(op): Console<{ Action::ReplaceMeter as u8 }>,
) -> StaffResult {
    let h = guarded(&state, &op, id).await?;
    render(&state, &op, &h, ReplaceForm::default(), None).await
}

/// "1234.5" kWh → 123450 centikWh (at most two decimals, not negative).
fn parse_kwh(s: &str) -> Option<i64> {
    let s = s.trim();
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty()
        || whole.len() > 9
        || frac.len() > 2
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let w: i64 = whole.parse().ok()?;
    let f: i64 = match frac.len() {
        0 => 0,
        1 => frac.parse::<i64>().ok()? * 10,
        _ => frac.parse().ok()?,
    };
    Some(w * 100 + f)
}

fn refusal_key(r: Refusal) -> &'static str {
    match r {
        Refusal::NoSuchMeter => "staff-replace-no-meter",
        Refusal::Retired => "staff-replace-retired",
        Refusal::NoBus => "staff-replace-no-bus",
        Refusal::InFlight => "staff-replace-in-flight",
        Refusal::BadAddress => "staff-replace-bad-address",
        Refusal::AddressTaken => "staff-replace-address-taken",
        Refusal::UnknownProfile => "staff-replace-unknown-profile",
        Refusal::BusFull => "staff-replace-bus-full",
        Refusal::NeverRead => "staff-replace-never-read",
        Refusal::FinalBelowLast => "staff-replace-final-below-last",
        Refusal::ReasonMissing => "staff-replace-reason-missing",
        Refusal::ReasonTooLong => "staff-replace-reason-too-long",
    }
}

/// `POST /staff/meters/{id}/replace`.
pub async fn replace(
    State(state): State<AppState>,
    crate::pages::PathId(id): crate::pages::PathId,
    f: StaffForm<ReplaceForm, { Action::ReplaceMeter as u8 }>,
) -> StaffResult {
    let StaffForm { op, form } = f;
    let h = guarded(&state, &op, id).await?;
    let l = op.l;
    if form.confirm != "1" {
        let e = l.t("staff-replace-unconfirmed");
        return render(&state, &op, &h, form, Some(e)).await;
    }
    let final_total_centikwh = if form.final_kwh.trim().is_empty() {
        None
    } else {
        match parse_kwh(&form.final_kwh) {
            Some(c) => Some(c),
            None => {
                let e = l.t("staff-replace-bad-final");
                return render(&state, &op, &h, form, Some(e)).await;
            }
        }
    };
    let req = Request {
        old_meter_id: h.meter_id.get(),
        new_address: &form.address,
        profile: &form.profile,
        final_total_centikwh,
        reason: &form.reason,
    };
    let now = state.settings().staff.clock.now_ms();
    match store::replace::replace(state.db(), &req, &op.actor(), now).await {
        Ok(done) => Ok(Redirect::to(&format!(
            "/staff/meters/{}?replaced={}",
            done.new_meter_id, done.carried_centikwh
        ))
        .into_response()),
        Err(ReplaceError::Refused(why)) => {
            let e = l.t(refusal_key(why));
            render(&state, &op, &h, form, Some(e)).await
        }
        Err(ReplaceError::Store(e)) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_kwh;

    #[test]
    fn final_readings_are_kwh_with_two_decimals() {
        assert_eq!(parse_kwh("1234.5"), Some(123_450));
        assert_eq!(parse_kwh(" 7 "), Some(700));
        assert_eq!(parse_kwh("0.07"), Some(7));
        for bad in ["", "-1", "1.234", "1,5", "abc", ".5", "1e3"] {
            assert_eq!(parse_kwh(bad), None, "{bad}");
        }
    }
}
