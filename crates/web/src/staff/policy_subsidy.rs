//! The free monthly allowance on `/staff/policy` (issue 14 item 6, E4): its
//! part of the page (`staff/policy_subsidy.html`, included by
//! `staff/policy.html`), the form that sets a scope's allowance and the
//! "run now" button for the current month. The store credits each room once
//! per month (`store::subsidy`), so the button is safe to press twice; both
//! changes are audited by the store.

use super::policy::{parse_scope, parse_threshold, place_of, render};
use super::{CurrentOperator, StaffForm, StaffResult};
use crate::AppState;
use crate::i18n::Lang;
use crate::pages::area_name;
use axum::extract::State;
use domain::AreaId;
use domain::staff::{Action, Place};
use serde::Deserialize;
use store::policy::ScheduleError;

/// One scope's allowance as listed.
pub struct AllowanceRow {
    /// `area` or `b:<id>`.
    pub value: String,
    /// The scope's name.
    pub name: String,
    /// The allowance set for the scope (kWh), if any.
    pub kwh: Option<String>,
}

/// One month and building of subsidy issued.
pub struct IssuedRow {
    /// `YYYY-MM`.
    pub month: String,
    /// The building.
    pub building: String,
    /// Rooms credited.
    pub rooms: i64,
    /// kWh credited.
    pub kwh: String,
    /// Of it, confirmed by the meters.
    pub delivered_kwh: String,
}

/// The page's subsidy part.
pub struct SubsidyPart {
    /// The current campus-local month.
    pub month: String,
    /// The area's scope first, then its buildings.
    pub allowances: Vec<AllowanceRow>,
    /// The last twelve months' subsidy issued in the operator's scope.
    pub issued: Vec<IssuedRow>,
}

fn kwh(centikwh: i64) -> String {
    domain::CentiKwh::new(centikwh).to_string()
}

/// The months `YYYY-MM` from eleven months before `month` to `month`.
fn last_year(month: &str) -> String {
    let (y, m) = month.split_once('-').unwrap_or(("2000", "01"));
    let (y, m): (i32, i32) = (y.parse().unwrap_or(2000), m.parse().unwrap_or(1));
    let i = y * 12 + (m - 1) - 11;
    format!("{:04}-{:02}", i / 12, i % 12 + 1)
}

/// Builds the part for area `area_id` (in time zone `tz`) and its
/// buildings `(id, zh, en)`.
pub async fn part(
    state: &AppState,
    op: &CurrentOperator,
    l: Lang,
    area_id: AreaId,
    tz: &domain::time::CampusTz,
    buildings: &[(i64, String, String)],
    now_ms: i64,
) -> Result<SubsidyPart, store::Error> {
    let month = store::subsidy::month_of(now_ms, tz);
    let set = store::subsidy::allowances(state.db(), area_id).await?;
    let of = |b: Option<i64>| {
        set.iter()
            .find(|a| a.building_id == b)
            .map(|a| kwh(a.centikwh))
    };
    let mut allowances = vec![AllowanceRow {
        value: "area".to_owned(),
        name: l.t("staff-policy-whole-area"),
        kwh: of(None),
    }];
    allowances.extend(buildings.iter().map(|(id, zh, en)| AllowanceRow {
        value: format!("b:{id}"),
        name: area_name(l, zh, en).to_owned(),
        kwh: of(Some(*id)),
    }));
    let mut within = store::dashboard::Within::of(op.operator.role, &op.operator.scope);
    within.areas = Some(match within.areas {
        Some(v) => v.into_iter().filter(|a| *a == area_id.get()).collect(),
        None => vec![area_id.get()],
    });
    let issued = store::subsidy::issued(state.db(), &within, &last_year(&month), &month)
        .await?
        .into_iter()
        .map(|r| IssuedRow {
            month: r.month,
            building: area_name(l, &r.building_zh, &r.building_en).to_owned(),
            rooms: r.rooms,
            kwh: kwh(r.centikwh),
            delivered_kwh: kwh(r.delivered_centikwh),
        })
        .collect();
    Ok(SubsidyPart {
        month,
        allowances,
        issued,
    })
}

/// The allowance form (fields may be missing, as in the price form).
#[derive(Debug, Deserialize)]
pub struct AllowanceForm {
    csrf: String,
    #[serde(default)]
    area_id: i64,
    #[serde(default)]
    scope: String,
    /// kWh per room and month; blank clears the scope's allowance.
    #[serde(default)]
    kwh: String,
}
crate::pages::csrf_forms!(AllowanceForm);

/// `POST /staff/policy/subsidy`: sets or clears a scope's allowance.
pub async fn set(
    State(state): State<AppState>,
    f: StaffForm<AllowanceForm, { Action::ManagePolicy as u8 }>,
) -> StaffResult {
    let StaffForm { op, form } = f;
    let l = op.l;
    let Some(scope) = parse_scope(AreaId::new(form.area_id), &form.scope) else {
        let e = Some(l.t("staff-policy-bad-scope"));
        return render(&state, &op, Some(form.area_id), e, None).await;
    };
    op.require(&state, Action::ManagePolicy, place_of(scope))
        .await?;
    // The same bounds as a threshold: 0 to 1000 kWh, two decimals.
    let Ok(allowance) = parse_threshold(&form.kwh) else {
        let e = Some(l.t("staff-subsidy-bad-kwh"));
        return render(&state, &op, Some(form.area_id), e, None).await;
    };
    let now = state.settings().staff.clock.now_ms();
    match store::subsidy::set_allowance(state.db(), scope, allowance, &op.actor(), now).await {
        Ok(()) => super::see_with(
            &format!("/staff/policy?area_id={}&done=", form.area_id),
            "subsidy",
        ),
        Err(ScheduleError::NoSuchBuilding | ScheduleError::NoSuchArea) => {
            let e = Some(l.t("staff-policy-bad-scope"));
            render(&state, &op, Some(form.area_id), e, None).await
        }
        Err(ScheduleError::NotInFuture) => Err(super::StaffError::NotFound),
        Err(ScheduleError::Store(e)) => Err(e.into()),
    }
}

/// The run form.
#[derive(Debug, Deserialize)]
pub struct RunForm {
    csrf: String,
    #[serde(default)]
    area_id: i64,
}
crate::pages::csrf_forms!(RunForm);

/// `POST /staff/policy/subsidy/run`: runs the area's current month now
/// (what the background worker does) and shows what it did.
pub async fn run(
    State(state): State<AppState>,
    f: StaffForm<RunForm, { Action::ManagePolicy as u8 }>,
) -> StaffResult {
    let StaffForm { op, form } = f;
    let area_id = AreaId::new(form.area_id);
    op.require(&state, Action::ManagePolicy, Place::Area(area_id))
        .await?;
    let now = state.settings().staff.clock.now_ms();
    let runs = store::subsidy::run_current(state.db(), Some(area_id), &op.actor(), now).await?;
    let Some(r) = runs.first() else {
        return Err(super::StaffError::NotFound);
    };
    let notice = op.l.t_args(
        "staff-subsidy-ran",
        &[
            ("month", r.month.as_str().into()),
            ("rooms", r.rooms.to_string().into()),
            ("credited", r.credited.to_string().into()),
            ("skipped", r.skipped.to_string().into()),
            ("kwh", r.kwh.as_str().into()),
        ],
    );
    render(&state, &op, Some(form.area_id), None, Some(notice)).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_last_twelve_months() {
        assert_eq!(super::last_year("2026-12"), "2026-01");
        assert_eq!(super::last_year("2026-03"), "2025-04");
        assert_eq!(super::last_year("2026-11"), "2025-12");
    }
}
