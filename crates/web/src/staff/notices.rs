//! Notices in the console (issue 13 item 7): the list with each notice's
//! state (scheduled / showing / ended), and — for administrators and
//! building managers — publishing and editing, with the schedule, the
//! target, the pin and the stored-only push flag.
//!
//! Where a notice reaches is its place: the whole campus is every area,
//! an area is [`Place::Area`], a set of buildings is each building's
//! [`Place::Building`]. [`CurrentOperator::require`] is asked for every one
//! of them (so a building manager targeting a building not theirs, or an
//! area, gets 403 and an audit row), for the old target of an edit as well
//! as the new.

use super::{Console, CurrentOperator, StaffError, StaffForm, StaffResult, html, html_with_status};
use crate::AppState;
use crate::i18n::Lang;
use crate::pages::{area_name, fmt_time};
use askama::Template;
use axum::extract::{Query, State};
use domain::staff::{Action, Place};
use domain::{AreaId, BuildingId};
use serde::Deserialize;
use store::notices::{self, Draft, DraftError, Notice, Showing, Target};

/// Notices the list shows.
const LIST_ROWS: i64 = 200;

/// One notice as the list shows it.
struct Row {
    id: i64,
    title: String,
    target: String,
    from: String,
    until: String,
    state: String,
    state_class: &'static str,
    pinned: bool,
    push: bool,
    by: String,
    editable: bool,
}

/// `GET /staff/notices`.
#[derive(Template)]
#[template(path = "staff/notices.html")]
struct ListPage {
    l: Lang,
    frame: super::Frame,
    rows: Vec<Row>,
    publish: bool,
    saved: Option<String>,
}

/// An area of the target picker.
struct AreaOption {
    id: i64,
    name: String,
    on: bool,
}

/// A building of the target picker.
struct BuildingOption {
    id: i64,
    name: String,
    on: bool,
}

/// The new / edit form.
#[derive(Template)]
#[template(path = "staff/notice_edit.html")]
struct EditPage {
    l: Lang,
    frame: super::Frame,
    /// `/staff/notices` (new) or `/staff/notices/{id}`.
    action: String,
    revision: i64,
    title: String,
    body: String,
    from: String,
    until: String,
    target: &'static str,
    areas: Vec<AreaOption>,
    buildings: Vec<BuildingOption>,
    /// Whether the operator may choose the whole campus / an area.
    wide: bool,
    pinned: bool,
    push: bool,
    error: Option<String>,
    meta: Option<String>,
}

/// What the campus looks like to the target picker and the checks.
struct Campus {
    areas: Vec<store::campus::Area>,
    buildings: Vec<store::notices::Building>,
}

impl Campus {
    async fn load(state: &AppState) -> Result<Self, StaffError> {
        Ok(Campus {
            areas: store::campus::areas(state.db()).await?,
            buildings: notices::buildings(state.db()).await?,
        })
    }

    fn area_text(&self, l: Lang, id: i64) -> String {
        self.areas.iter().find(|a| a.id.get() == id).map_or_else(
            || id.to_string(),
            |a| area_name(l, &a.name_zh, &a.name_en).to_owned(),
        )
    }

    fn building(&self, id: i64) -> Option<&store::notices::Building> {
        self.buildings.iter().find(|b| b.id == id)
    }

    fn building_text(&self, l: Lang, id: i64) -> String {
        self.building(id).map_or_else(
            || id.to_string(),
            |b| area_name(l, &b.name_zh, &b.name_en).to_owned(),
        )
    }

    /// Every place a notice for `t` reaches.
    fn places(&self, t: &Target) -> Vec<Place> {
        match t {
            Target::Campus => self.areas.iter().map(|a| Place::Area(a.id)).collect(),
            Target::Area { area_id } => vec![Place::Area(AreaId::new(*area_id))],
            Target::Buildings { building_ids } => building_ids
                .iter()
                .filter_map(|id| self.building(*id))
                .map(|b| Place::Building(AreaId::new(b.area_id), BuildingId::new(b.id)))
                .collect(),
        }
    }

    fn target_text(&self, l: Lang, t: &Target) -> String {
        match t {
            Target::Campus => l.t("staff-notice-target-campus"),
            Target::Area { area_id } => self.area_text(l, *area_id),
            Target::Buildings { building_ids } => building_ids
                .iter()
                .map(|b| self.building_text(l, *b))
                .collect::<Vec<_>>()
                .join("、"),
        }
    }
}

/// Whether the operator may publish at every place of `t`.
fn may_target(op: &CurrentOperator, c: &Campus, t: &Target) -> bool {
    c.places(t)
        .into_iter()
        .all(|p| op.may(Action::PublishNotice, p))
}

/// Asks for every place of `t` (the first refusal is audited and is 403).
async fn require_target(
    state: &AppState,
    op: &CurrentOperator,
    c: &Campus,
    t: &Target,
) -> Result<(), StaffError> {
    for p in c.places(t) {
        op.require(state, Action::PublishNotice, p).await?;
    }
    Ok(())
}

/// The value of a `datetime-local` input (`YYYY-MM-DDTHH:MM`).
fn input_minutes(ms: Option<i64>, tz: &jiff::tz::TimeZone) -> String {
    ms.map(|ms| fmt_time(ms, tz).replace(' ', "T"))
        .unwrap_or_default()
}

/// Parses a `datetime-local` value in campus time; empty is `Ok(None)`.
fn parse_minutes(s: &str, tz: &jiff::tz::TimeZone) -> Result<Option<i64>, ()> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let dt: jiff::civil::DateTime = s.replace(' ', "T").parse().map_err(|_| ())?;
    dt.to_zoned_datetime(tz.clone())
        .map(|z| Some(z.timestamp().as_millisecond()))
        .map_err(|_| ())
}

/// Query of the list.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    saved: Option<String>,
}

/// `GET /staff/notices`: every operator may read the list.
pub async fn list(
    State(state): State<AppState>,
    Console(op): Console<{ Action::ViewConsole as u8 }>,
    Query(q): Query<ListQuery>,
) -> StaffResult {
    let l = op.l;
    let tz = crate::pages::campus_tz(&state);
    let now = state.settings().staff.clock.now_ms();
    let c = Campus::load(&state).await?;
    let rows = notices::list(state.db(), LIST_ROWS)
        .await?
        .into_iter()
        .map(|n| {
            let (state, state_class) = match n.showing(now) {
                Showing::Scheduled => (l.t("staff-notice-state-scheduled"), "scheduled"),
                Showing::Showing => (l.t("staff-notice-state-showing"), "showing"),
                Showing::Ended => (l.t("staff-notice-state-ended"), "ended"),
            };
            Row {
                id: n.id,
                target: c.target_text(l, &n.draft.target),
                from: fmt_time(n.draft.shown_from_ms.unwrap_or(n.created_at_ms), tz),
                until: n
                    .draft
                    .shown_until_ms
                    .map_or_else(|| l.t("staff-notice-until-open"), |u| fmt_time(u, tz)),
                state,
                state_class,
                pinned: n.draft.pinned,
                push: n.draft.push,
                by: n
                    .updated_by
                    .clone()
                    .or_else(|| n.created_by.clone())
                    .unwrap_or_default(),
                editable: may_target(&op, &c, &n.draft.target),
                title: n.draft.title,
            }
        })
        .collect();
    html(&ListPage {
        l,
        frame: op.frame("staff-notices-title", "/staff/notices"),
        rows,
        publish: op.may(Action::PublishNotice, Place::Console),
        saved: q.saved.map(|t| l.t1("staff-notice-saved", "title", t)),
    })
}

/// The form as posted: pairs, since the buildings are repeated
/// `building` fields.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct NoticeForm(Vec<(String, String)>);

impl NoticeForm {
    fn get(&self, k: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| n == k)
            .map_or("", |(_, v)| v.as_str())
    }

    fn all(&self, k: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
}

impl crate::pages::CsrfForm for NoticeForm {
    fn csrf(&self) -> &str {
        self.get("csrf")
    }
}

/// Reads a posted form; `Err` is the catalog key of what is wrong.
fn read_form(f: &NoticeForm, tz: &jiff::tz::TimeZone) -> Result<Draft, &'static str> {
    let from = parse_minutes(f.get("from"), tz).map_err(|()| "staff-notice-bad-time")?;
    let until = parse_minutes(f.get("until"), tz).map_err(|()| "staff-notice-bad-time")?;
    let target = match f.get("target") {
        "campus" => Target::Campus,
        "area" => Target::Area {
            area_id: f
                .get("area")
                .trim()
                .parse()
                .map_err(|_| "staff-notice-bad-target")?,
        },
        "buildings" => {
            let mut ids = Vec::new();
            for b in f.all("building") {
                ids.push(b.trim().parse().map_err(|_| "staff-notice-bad-target")?);
            }
            Target::Buildings { building_ids: ids }
        }
        _ => return Err("staff-notice-bad-target"),
    };
    let d = Draft {
        title: f.get("title").to_owned(),
        body: f.get("body").to_owned(),
        shown_from_ms: from,
        shown_until_ms: until,
        target,
        pinned: !f.get("pinned").is_empty(),
        push: !f.get("push").is_empty(),
    };
    d.check().map_err(|e| match e {
        DraftError::TitleMissing => "staff-notice-title-missing",
        DraftError::TitleTooLong => "staff-notice-title-too-long",
        DraftError::BodyMissing => "staff-notice-body-missing",
        DraftError::BodyTooLong => "staff-notice-body-too-long",
        DraftError::UntilBeforeFrom => "staff-notice-until-before-from",
        DraftError::Buildings => "staff-notice-buildings-count",
    })?;
    Ok(d)
}

/// What the form shows: a draft (posted or stored) and where it goes.
struct Shown<'a> {
    action: String,
    revision: i64,
    draft: &'a Draft,
    /// The raw times when the posted ones did not parse.
    times: Option<(String, String)>,
    error: Option<String>,
    meta: Option<String>,
}

fn render_form(
    state: &AppState,
    op: &CurrentOperator,
    c: &Campus,
    s: Shown<'_>,
    title_key: &str,
) -> StaffResult {
    let l = op.l;
    let tz = crate::pages::campus_tz(state);
    let d = s.draft;
    let (target, area, chosen): (&'static str, Option<i64>, &[i64]) = match &d.target {
        Target::Campus => ("campus", None, &[]),
        Target::Area { area_id } => ("area", Some(*area_id), &[]),
        Target::Buildings { building_ids } => ("buildings", None, building_ids),
    };
    let (from, until) = s.times.unwrap_or_else(|| {
        (
            input_minutes(d.shown_from_ms, tz),
            input_minutes(d.shown_until_ms, tz),
        )
    });
    let failed = s.error.is_some();
    html_with_status(
        &EditPage {
            l,
            frame: op.frame(title_key, "/staff/notices"),
            action: s.action,
            revision: s.revision,
            title: d.title.clone(),
            body: d.body.clone(),
            from,
            until,
            target,
            wide: c
                .areas
                .iter()
                .all(|a| op.may(Action::PublishNotice, Place::Area(a.id))),
            areas: c
                .areas
                .iter()
                .filter(|a| op.may(Action::PublishNotice, Place::Area(a.id)))
                .map(|a| AreaOption {
                    id: a.id.get(),
                    name: area_name(l, &a.name_zh, &a.name_en).to_owned(),
                    on: area == Some(a.id.get()),
                })
                .collect(),
            buildings: c
                .buildings
                .iter()
                .filter(|b| {
                    op.may(
                        Action::PublishNotice,
                        Place::Building(AreaId::new(b.area_id), BuildingId::new(b.id)),
                    )
                })
                .map(|b| BuildingOption {
                    id: b.id,
                    name: format!(
                        "{} · {}",
                        c.area_text(l, b.area_id),
                        area_name(l, &b.name_zh, &b.name_en)
                    ),
                    on: chosen.contains(&b.id),
                })
                .collect(),
            pinned: d.pinned,
            push: d.push,
            error: s.error,
            meta: s.meta,
        },
        failed,
    )
}

/// `GET /staff/notices/new`.
pub async fn new_page(
    State(state): State<AppState>,
    Console(op): Console<{ Action::PublishNotice as u8 }>,
) -> StaffResult {
    let c = Campus::load(&state).await?;
    let draft = Draft {
        title: String::new(),
        body: String::new(),
        shown_from_ms: None,
        shown_until_ms: None,
        target: if op.operator.scope.buildings.is_empty() {
            Target::Campus
        } else {
            Target::Buildings {
                building_ids: Vec::new(),
            }
        },
        pinned: false,
        push: false,
    };
    render_form(
        &state,
        &op,
        &c,
        Shown {
            action: "/staff/notices".to_owned(),
            revision: 0,
            draft: &draft,
            times: None,
            error: None,
            meta: None,
        },
        "staff-notice-new-title",
    )
}

/// A posted new / edit form being answered.
struct Posting<'a> {
    state: &'a AppState,
    op: &'a CurrentOperator,
    c: &'a Campus,
    form: &'a NoticeForm,
    /// Where the form posts to.
    action: String,
    title_key: &'static str,
}

impl Posting<'_> {
    /// The form again with the posted values and `key`'s message (422).
    fn refused(&self, key: &str) -> StaffResult {
        let form = self.form;
        let draft = Draft {
            title: form.get("title").to_owned(),
            body: form.get("body").to_owned(),
            shown_from_ms: None,
            shown_until_ms: None,
            target: match form.get("target") {
                "area" => form
                    .get("area")
                    .parse()
                    .map_or(Target::Campus, |area_id| Target::Area { area_id }),
                "buildings" => Target::Buildings {
                    building_ids: form
                        .all("building")
                        .filter_map(|b| b.parse().ok())
                        .collect(),
                },
                _ => Target::Campus,
            },
            pinned: !form.get("pinned").is_empty(),
            push: !form.get("push").is_empty(),
        };
        render_form(
            self.state,
            self.op,
            self.c,
            Shown {
                action: self.action.clone(),
                revision: form.get("revision").parse().unwrap_or(0),
                draft: &draft,
                times: Some((form.get("from").to_owned(), form.get("until").to_owned())),
                error: Some(self.op.l.t(key)),
                meta: None,
            },
            self.title_key,
        )
    }

    /// The posted draft when it reads and its target exists (`Err`: the
    /// catalog key of what is wrong), after asking for every place of it.
    async fn draft(&self) -> StaffResult<Result<Draft, &'static str>> {
        let draft = match read_form(self.form, crate::pages::campus_tz(self.state)) {
            Ok(d) => d,
            Err(key) => return Ok(Err(key)),
        };
        if !known(&draft.target, self.c) {
            return Ok(Err("staff-notice-bad-target"));
        }
        require_target(self.state, self.op, self.c, &draft.target).await?;
        Ok(Ok(draft))
    }

    /// The answer to a save: the list, or the form again with why not.
    fn answer(&self, saved: Result<Notice, store::Error>) -> StaffResult {
        match saved {
            Ok(n) => {
                self.state.pages_cache().forget_notices();
                super::see_with("/staff/notices?saved=", &n.draft.title)
            }
            Err(store::Error::Conflict(why)) if why == notices::CHANGED_MEANWHILE => {
                self.refused("staff-notice-changed")
            }
            Err(store::Error::Conflict(_)) => self.refused("staff-notice-bad-target"),
            Err(e) => Err(e.into()),
        }
    }
}

/// `POST /staff/notices`: publishes a notice.
pub async fn create(
    State(state): State<AppState>,
    f: StaffForm<NoticeForm, { Action::PublishNotice as u8 }>,
) -> StaffResult {
    let StaffForm { op, form } = f;
    let c = Campus::load(&state).await?;
    let p = Posting {
        state: &state,
        op: &op,
        c: &c,
        form: &form,
        action: "/staff/notices".to_owned(),
        title_key: "staff-notice-new-title",
    };
    let draft = match p.draft().await? {
        Ok(d) => d,
        Err(key) => return p.refused(key),
    };
    let now = state.settings().staff.clock.now_ms();
    // A new notice has no revision: its conflicts are all a bad target.
    p.answer(notices::create(state.db(), &draft, &op.actor(), now).await)
}

/// Whether the target's area or buildings all exist.
fn known(t: &Target, c: &Campus) -> bool {
    match t {
        Target::Campus => true,
        Target::Area { area_id } => c.areas.iter().any(|a| a.id.get() == *area_id),
        Target::Buildings { building_ids } => building_ids.iter().all(|b| c.building(*b).is_some()),
    }
}

/// The notice of the URL, when the operator may edit where it reaches
/// (the handler's gate asked for the console).
async fn editable(
    state: &AppState,
    op: &CurrentOperator,
    c: &Campus,
    id: i64,
) -> Result<Notice, StaffError> {
    let Some(n) = notices::get(state.db(), id).await? else {
        return Err(StaffError::NotFound);
    };
    require_target(state, op, c, &n.draft.target).await?;
    Ok(n)
}

fn meta_text(l: Lang, n: &Notice, tz: &jiff::tz::TimeZone) -> String {
    let mut s = l.t2(
        "staff-notice-created-by",
        "name",
        n.created_by.clone().unwrap_or_else(|| "—".to_owned()),
        "at",
        fmt_time(n.created_at_ms, tz),
    );
    if let (Some(by), Some(at)) = (&n.updated_by, n.updated_at_ms) {
        s.push_str(" · ");
        s.push_str(&l.t2(
            "staff-notice-updated-by",
            "name",
            by.clone(),
            "at",
            fmt_time(at, tz),
        ));
    }
    s
}

/// `GET /staff/notices/{id}`: the edit form.
pub async fn edit_page(
    State(state): State<AppState>,
    crate::pages::PathId(id): crate::pages::PathId,
    Console(op): Console<{ Action::PublishNotice as u8 }>,
) -> StaffResult {
    let c = Campus::load(&state).await?;
    let n = editable(&state, &op, &c, id).await?;
    let tz = crate::pages::campus_tz(&state);
    render_form(
        &state,
        &op,
        &c,
        Shown {
            action: format!("/staff/notices/{id}"),
            revision: n.revision,
            draft: &n.draft,
            times: None,
            error: None,
            meta: Some(meta_text(op.l, &n, tz)),
        },
        "staff-notice-edit-title",
    )
}

/// `POST /staff/notices/{id}`: saves an edit.
pub async fn update(
    State(state): State<AppState>,
    crate::pages::PathId(id): crate::pages::PathId,
    f: StaffForm<NoticeForm, { Action::PublishNotice as u8 }>,
) -> StaffResult {
    let StaffForm { op, form } = f;
    let c = Campus::load(&state).await?;
    let n = editable(&state, &op, &c, id).await?;
    let p = Posting {
        state: &state,
        op: &op,
        c: &c,
        form: &form,
        action: format!("/staff/notices/{id}"),
        title_key: "staff-notice-edit-title",
    };
    let draft = match p.draft().await? {
        Ok(d) => d,
        Err(key) => return p.refused(key),
    };
    let Ok(revision) = form.get("revision").parse::<i64>() else {
        return p.refused("staff-notice-changed");
    };
    let now = state.settings().staff.clock.now_ms();
    p.answer(notices::update(state.db(), n.id, revision, &draft, &op.actor(), now).await)
}
