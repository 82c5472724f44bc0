//! No-cut hours and scheduled power-off hours on `/staff/policy` (issue 14
//! item 6, part 3): the section listing an area's windows in force
//! (`staff/policy_windows.html`, included by the policy page) and its two
//! forms, set and clear. [`Action::ManagePolicy`] at the scope's place;
//! validated by `store::schedule::WindowSpec::parse` (HH:MM, start ≠ end,
//! at least one weekday); audited by the store in its transaction. The
//! scheduler (`service::schedule`) acts on the windows.

use super::policy::{place_of, render};
use super::{StaffForm, StaffResult};
use crate::AppState;
use crate::i18n::Lang;
use crate::pages::area_name;
use axum::extract::State;
use domain::AreaId;
use domain::staff::Action;
use serde::Deserialize;
use store::schedule::{BadWindow, SetError, Window, WindowKind, WindowSpec, hhmm};

/// One window as listed.
pub(super) struct WindowRow {
    /// `area` or `b:<id>`, posted back by the clear form.
    pub scope: String,
    pub scope_name: String,
    /// `no_cut` / `power_off`.
    pub kind: &'static str,
    pub kind_text: String,
    /// "周一至周五 23:30–06:00".
    pub when: String,
    pub by: String,
}

/// The section of the policy page.
pub(super) struct Section {
    pub rows: Vec<WindowRow>,
    /// (value, label) of the kinds.
    pub kinds: Vec<(&'static str, String)>,
    /// (value 0..6, label) of the weekdays.
    pub days: Vec<(u8, String)>,
}

/// The weekdays of a window as words: 每天, 周一至周五, 周六、周日.
pub fn days_text(l: Lang, weekdays: u8) -> String {
    match weekdays & 0x7f {
        0x7f => l.t("policy-window-every-day"),
        0x1f => l.t("policy-window-mon-fri"),
        0x60 => l.t("policy-window-weekend"),
        bits => (0..7u8)
            .filter(|d| bits & (1 << d) != 0)
            .map(|d| l.t(&format!("policy-window-day-{d}")))
            .collect::<Vec<_>>()
            .join(&l.t("policy-window-day-sep")),
    }
}

/// "23:30–06:00" (with "次日"/"next day" when it crosses midnight).
pub fn span_text(l: Lang, s: &WindowSpec) -> String {
    let span = format!("{}–{}", hhmm(s.start_minute), hhmm(s.end_minute));
    if s.crosses_midnight() {
        l.t1("policy-window-overnight", "span", span)
    } else {
        span
    }
}

/// What a student reads about a window on the overview.
pub fn student_text(l: Lang, w: &Window) -> String {
    let key = match w.kind {
        WindowKind::NoCut => "overview-no-cut-hours",
        WindowKind::PowerOff => "overview-power-off-hours",
    };
    l.t2(
        key,
        "days",
        days_text(l, w.spec.weekdays),
        "span",
        span_text(l, &w.spec),
    )
}

fn kind_text(l: Lang, k: WindowKind) -> String {
    l.t(match k {
        WindowKind::NoCut => "staff-policy-window-no-cut",
        WindowKind::PowerOff => "staff-policy-window-power-off",
    })
}

/// The section for an area.
pub(super) async fn section(state: &AppState, l: Lang, area_id: AreaId) -> store::Result<Section> {
    let rows = store::schedule::windows(state.db(), area_id)
        .await?
        .into_iter()
        .map(|w| WindowRow {
            scope: w
                .building_id
                .map_or_else(|| "area".to_owned(), |b| format!("b:{b}")),
            scope_name: match (&w.building_name_zh, &w.building_name_en) {
                (Some(zh), Some(en)) => area_name(l, zh, en).to_owned(),
                _ => l.t("staff-policy-whole-area"),
            },
            kind: w.kind.as_str(),
            kind_text: kind_text(l, w.kind),
            when: format!(
                "{} {}",
                days_text(l, w.spec.weekdays),
                span_text(l, &w.spec)
            ),
            by: w.operator_name,
        })
        .collect();
    Ok(Section {
        rows,
        kinds: WindowKind::ALL
            .into_iter()
            .map(|k| (k.as_str(), kind_text(l, k)))
            .collect(),
        days: (0..7u8)
            .map(|d| (d, l.t(&format!("policy-window-day-{d}"))))
            .collect(),
    })
}

/// The set form. Every field but the token may be missing (refused as
/// malformed after the permission check, like the other policy forms).
/// A weekday is a checkbox `d0` (Monday) … `d6` (Sunday).
#[derive(Debug, Deserialize)]
pub struct WindowForm {
    csrf: String,
    #[serde(default)]
    area_id: i64,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    start: String,
    #[serde(default)]
    end: String,
    d0: Option<String>,
    d1: Option<String>,
    d2: Option<String>,
    d3: Option<String>,
    d4: Option<String>,
    d5: Option<String>,
    d6: Option<String>,
}
crate::pages::csrf_forms!(WindowForm);

impl WindowForm {
    fn weekdays(&self) -> Vec<u8> {
        [
            &self.d0, &self.d1, &self.d2, &self.d3, &self.d4, &self.d5, &self.d6,
        ]
        .into_iter()
        .zip(0u8..)
        .filter(|(v, _)| v.is_some())
        .map(|(_, d)| d)
        .collect()
    }
}

/// The clear form.
#[derive(Debug, Deserialize)]
pub struct ClearForm {
    csrf: String,
    #[serde(default)]
    area_id: i64,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    kind: String,
}
crate::pages::csrf_forms!(ClearForm);

fn bad_window_key(e: &BadWindow) -> &'static str {
    match e {
        BadWindow::BadTime => "staff-policy-window-bad-time",
        BadWindow::Empty => "staff-policy-window-empty",
        BadWindow::NoWeekday => "staff-policy-window-no-day",
        BadWindow::BadKind => "staff-policy-window-bad-kind",
    }
}

/// `POST /staff/policy/windows`: sets a scope's window of a kind.
pub async fn set(
    State(state): State<AppState>,
    f: StaffForm<WindowForm, { Action::ManagePolicy as u8 }>,
) -> StaffResult {
    let StaffForm { op, form } = f;
    let l = op.l;
    let area_id = AreaId::new(form.area_id);
    let refuse = |key: &str| Some(l.t(key));
    let Some(scope) = super::policy::parse_scope(area_id, &form.scope) else {
        return render(
            &state,
            &op,
            Some(form.area_id),
            refuse("staff-policy-bad-scope"),
            None,
        )
        .await;
    };
    op.require(&state, Action::ManagePolicy, place_of(scope))
        .await?;
    let checked = WindowKind::parse(&form.kind)
        .ok_or(BadWindow::BadKind)
        .and_then(|k| WindowSpec::parse(&form.start, &form.end, &form.weekdays()).map(|s| (k, s)));
    let (kind, spec) = match checked {
        Ok(v) => v,
        Err(e) => {
            return render(
                &state,
                &op,
                Some(form.area_id),
                refuse(bad_window_key(&e)),
                None,
            )
            .await;
        }
    };
    let now = state.settings().staff.clock.now_ms();
    match store::schedule::set_window(
        state.db(),
        &op.actor(),
        area_id,
        scope.building_id,
        kind,
        spec,
        now,
    )
    .await
    {
        Ok(_) => super::see_with(
            &format!("/staff/policy?area_id={}&done=", form.area_id),
            "window",
        ),
        Err(SetError::NoSuchArea | SetError::NoSuchBuilding) => {
            render(
                &state,
                &op,
                Some(form.area_id),
                refuse("staff-policy-bad-scope"),
                None,
            )
            .await
        }
        Err(SetError::Store(e)) => Err(e.into()),
    }
}

/// `POST /staff/policy/windows/clear`: clears a scope's window of a kind.
pub async fn clear(
    State(state): State<AppState>,
    f: StaffForm<ClearForm, { Action::ManagePolicy as u8 }>,
) -> StaffResult {
    let StaffForm { op, form } = f;
    let l = op.l;
    let area_id = AreaId::new(form.area_id);
    let refuse = |key: &str| Some(l.t(key));
    let Some(scope) = super::policy::parse_scope(area_id, &form.scope) else {
        return render(
            &state,
            &op,
            Some(form.area_id),
            refuse("staff-policy-bad-scope"),
            None,
        )
        .await;
    };
    op.require(&state, Action::ManagePolicy, place_of(scope))
        .await?;
    let Some(kind) = WindowKind::parse(&form.kind) else {
        return render(
            &state,
            &op,
            Some(form.area_id),
            refuse("staff-policy-window-bad-kind"),
            None,
        )
        .await;
    };
    let now = state.settings().staff.clock.now_ms();
    match store::schedule::clear_window(
        state.db(),
        &op.actor(),
        area_id,
        scope.building_id,
        kind,
        now,
    )
    .await
    {
        Ok(_) => super::see_with(
            &format!("/staff/policy?area_id={}&done=", form.area_id),
            "window-cleared",
        ),
        Err(SetError::NoSuchArea | SetError::NoSuchBuilding) => {
            render(
                &state,
                &op,
                Some(form.area_id),
                refuse("staff-policy-bad-scope"),
                None,
            )
            .await
        }
        Err(SetError::Store(e)) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_read_as_words() {
        let zh = Lang::default();
        assert_eq!(days_text(zh, 0x7f), zh.t("policy-window-every-day"));
        assert_eq!(days_text(zh, 0x1f), zh.t("policy-window-mon-fri"));
        let two = days_text(zh, 0b101);
        assert!(two.contains(&zh.t("policy-window-day-0")), "{two}");
        assert!(two.contains(&zh.t("policy-window-day-2")), "{two}");
    }
}
