//! No-cut ("friendly") hours and scheduled power-off hours (issue 14 item
//! 6, E4), per area or building: the windows (`policy_window`, migration
//! 0023) and the scheduler tick that turns their edges into relay commands
//! through `relay_command` (executed by the head-end like a staff command).
//!
//! - **A window** is a daily span of campus-local time on a set of
//!   weekdays (the day it *starts*), crossing midnight when the end is
//!   before the start. A building's window of a kind replaces its area's.
//! - **No-cut hours**: at the start every meter of the scope that is not
//!   already under keep-power (保电) is sent keep-power ("no-cut hours");
//!   at the end exactly those meters are sent the release — not a meter
//!   staff had put under keep-power before, and not one staff put under
//!   keep-power during the window. Every meter of the scope, not only the
//!   low ones: the prepaid meter trips *itself* when its remaining energy
//!   runs out, so a meter with plenty at 22:00 can trip at 03:00; only
//!   keep-power set beforehand stops that (meter-profile).
//! - **Power-off hours**: at the start every meter of the scope that is
//!   not under keep-power is tripped ("scheduled"); at the end those
//!   meters are closed.
//! - **Once per edge, on several nodes**: an occurrence is one
//!   `window_occurrence` row (unique `(window_id, start_ms)`), and each
//!   meter's edge one `window_meter` row (primary key `(occurrence,
//!   meter, phase)`) inserted in the transaction that queues its command;
//!   a scheduler that loses the insert queues nothing.
//! - **Catch-up**: a tick inside a window opens its occurrence whenever
//!   it starts (after a restart, too); an occurrence not ended when its
//!   end passes (or its window is cleared) is ended by the next tick.
//!   A keep-power still queued at the end (an offline meter) is cancelled
//!   rather than released.

use crate::audit::{self, Actor, Entry};
use crate::{Db, Error, Result, Tx, on_db, on_tx};
use domain::AreaId;
use jiff::ToSpan;
use jiff::tz::TimeZone;
use serde::Serialize;

/// Which kind of window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    /// No-cut ("friendly") hours: keep-power for the span.
    NoCut,
    /// Scheduled power-off hours: tripped for the span.
    PowerOff,
}

impl WindowKind {
    /// Both kinds.
    pub const ALL: [WindowKind; 2] = [Self::NoCut, Self::PowerOff];

    /// The stored (and posted) name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NoCut => "no_cut",
            Self::PowerOff => "power_off",
        }
    }

    /// The kind of a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The reason on the relay commands of this kind's edges.
    pub const fn reason(self) -> &'static str {
        match self {
            Self::NoCut => "no-cut hours",
            Self::PowerOff => "scheduled",
        }
    }

    /// The relay action at the start of the window and at its end.
    const fn edges(self) -> (&'static str, &'static str) {
        match self {
            Self::NoCut => ("keep_power", "keep_power_release"),
            Self::PowerOff => ("trip", "close"),
        }
    }
}

/// The name the scheduler's commands and audit rows carry.
pub const SCHEDULER_NAME: &str = "(scheduler)";

/// Why a window was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadWindow {
    /// A time is not HH:MM (00:00 to 23:59).
    #[error("a time is written HH:MM, 00:00 to 23:59")]
    BadTime,
    /// Start and end are the same.
    #[error("the start and the end are the same")]
    Empty,
    /// No weekday chosen.
    #[error("choose at least one weekday")]
    NoWeekday,
    /// The kind is unknown.
    #[error("unknown kind of window")]
    BadKind,
}

/// A window's span and days, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WindowSpec {
    /// Minutes after local midnight the window starts.
    pub start_minute: u16,
    /// Minutes after local midnight it ends (before the start: the next day).
    pub end_minute: u16,
    /// Bit 0 Monday … bit 6 Sunday: the days it starts on.
    pub weekdays: u8,
}

/// Parses `HH:MM` into minutes after midnight.
pub fn parse_hhmm(s: &str) -> Option<u16> {
    let (h, m) = s.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

/// `HH:MM` of minutes after midnight.
pub fn hhmm(minute: u16) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

impl WindowSpec {
    /// Validates typed times and the chosen weekdays (0 Monday … 6 Sunday).
    pub fn parse(start: &str, end: &str, weekdays: &[u8]) -> std::result::Result<Self, BadWindow> {
        let start_minute = parse_hhmm(start).ok_or(BadWindow::BadTime)?;
        let end_minute = parse_hhmm(end).ok_or(BadWindow::BadTime)?;
        if start_minute == end_minute {
            return Err(BadWindow::Empty);
        }
        let mut bits = 0u8;
        for &d in weekdays {
            if d > 6 {
                return Err(BadWindow::NoWeekday);
            }
            bits |= 1 << d;
        }
        if bits == 0 {
            return Err(BadWindow::NoWeekday);
        }
        Ok(Self {
            start_minute,
            end_minute,
            weekdays: bits,
        })
    }

    /// Whether the window starts on weekday `d` (0 Monday … 6 Sunday).
    pub fn starts_on(&self, d: u8) -> bool {
        d < 7 && self.weekdays & (1 << d) != 0
    }

    /// Whether the window ends on the day after it starts.
    pub fn crosses_midnight(&self) -> bool {
        self.end_minute < self.start_minute
    }

    /// The occurrence (start, end instants) under way at `now_ms`, if any.
    pub fn occurrence_at(&self, now_ms: i64, tz: &TimeZone) -> Option<(i64, i64)> {
        let today = domain::time::local_date(now_ms, tz);
        for back in [1i64, 0] {
            let Ok(day) = today.checked_sub(back.days()) else {
                continue;
            };
            let wd = u8::try_from(day.weekday().to_monday_zero_offset()).unwrap_or(7);
            if !self.starts_on(wd) {
                continue;
            }
            let end_day = if self.crosses_midnight() {
                day.checked_add(1.days()).ok()?
            } else {
                day
            };
            let start = local_instant(day, self.start_minute, tz)?;
            let end = local_instant(end_day, self.end_minute, tz)?;
            if start <= now_ms && now_ms < end {
                return Some((start, end));
            }
        }
        None
    }
}

fn local_instant(day: jiff::civil::Date, minute: u16, tz: &TimeZone) -> Option<i64> {
    let t = jiff::civil::Time::new(
        i8::try_from(minute / 60).ok()?,
        i8::try_from(minute % 60).ok()?,
        0,
        0,
    )
    .ok()?;
    day.to_datetime(t)
        .to_zoned_datetime(tz.clone())
        .ok()
        .map(|z| z.timestamp().as_millisecond())
}

/// A window in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Window {
    /// Row id.
    pub id: i64,
    /// The area.
    pub area_id: i64,
    /// One building of it, or `None` for the whole area.
    pub building_id: Option<i64>,
    /// The building's name (zh), for a building's row.
    pub building_name_zh: Option<String>,
    /// The building's name (en), for a building's row.
    pub building_name_en: Option<String>,
    /// Which kind.
    pub kind: WindowKind,
    /// Span and days.
    pub spec: WindowSpec,
    /// Who set it.
    pub operator_name: String,
    /// When.
    pub created_at_ms: i64,
}

#[derive(sqlx::FromRow)]
struct RawWindow {
    id: i64,
    area_id: i64,
    building_id: Option<i64>,
    name_zh: Option<String>,
    name_en: Option<String>,
    kind: String,
    start_minute: i64,
    end_minute: i64,
    weekdays: i64,
    operator_name: String,
    created_at_ms: i64,
}

impl TryFrom<RawWindow> for Window {
    type Error = Error;

    fn try_from(r: RawWindow) -> Result<Self> {
        let bad = || Error::Conflict(format!("policy_window {} holds a bad value", r.id));
        Ok(Window {
            id: r.id,
            area_id: r.area_id,
            building_id: r.building_id,
            building_name_zh: r.name_zh.clone(),
            building_name_en: r.name_en.clone(),
            kind: WindowKind::parse(&r.kind).ok_or_else(bad)?,
            spec: WindowSpec {
                start_minute: u16::try_from(r.start_minute).map_err(|_| bad())?,
                end_minute: u16::try_from(r.end_minute).map_err(|_| bad())?,
                weekdays: u8::try_from(r.weekdays).map_err(|_| bad())?,
            },
            operator_name: r.operator_name,
            created_at_ms: r.created_at_ms,
        })
    }
}

const WINDOW_SELECT: &str = "select w.id, w.area_id, w.building_id, b.name_zh, b.name_en, w.kind,
        w.start_minute, w.end_minute, w.weekdays, w.operator_name, w.created_at_ms
     from policy_window w left join building b on b.id = w.building_id";

fn windows_of(rows: Vec<RawWindow>) -> Result<Vec<Window>> {
    rows.into_iter().map(Window::try_from).collect()
}

/// The windows in force of an area and its buildings (area first).
pub async fn windows(db: &Db, area_id: AreaId) -> Result<Vec<Window>> {
    let sql = format!(
        "{WINDOW_SELECT} where w.area_id = $1 and w.cleared_at_ms is null
         order by (case when w.building_id is null then 0 else 1 end), b.position, b.id, w.kind"
    );
    let rows: Vec<RawWindow> = on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
        .bind(area_id.get())
        .fetch_all(p)
        .await?);
    windows_of(rows)
}

/// The windows that apply to meter `meter_id`: per kind its building's,
/// else its area's.
pub async fn windows_of_meter(db: &Db, meter_id: i64) -> Result<Vec<Window>> {
    let sql = format!(
        "{WINDOW_SELECT}
         join meter m on m.id = $1 join room r on r.id = m.room_id
         where w.cleared_at_ms is null and w.area_id = m.area_id
           and (w.building_id = r.building_id
                or (w.building_id is null and not exists (
                    select 1 from policy_window wb where wb.building_id = r.building_id
                      and wb.kind = w.kind and wb.cleared_at_ms is null)))
         order by w.kind"
    );
    let rows: Vec<RawWindow> = on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
        .bind(meter_id)
        .fetch_all(p)
        .await?);
    windows_of(rows)
}

/// Why a window could not be set or cleared.
#[derive(Debug, thiserror::Error)]
pub enum SetError {
    /// The area does not exist.
    #[error("no such area")]
    NoSuchArea,
    /// The building is not in the area (or does not exist).
    #[error("no such building in this area")]
    NoSuchBuilding,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] Error),
}

impl From<sqlx::Error> for SetError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

fn subject(area_id: i64, building_id: Option<i64>) -> String {
    match building_id {
        Some(b) => format!("building:{b}"),
        None => format!("area:{area_id}"),
    }
}

async fn check_scope(
    tx: &mut Tx,
    area_id: i64,
    building_id: Option<i64>,
) -> std::result::Result<(), SetError> {
    let n: i64 = on_tx!(tx, |c| sqlx::query_scalar(
        "select count(*) from area where id = $1"
    )
    .bind(area_id)
    .fetch_one(c)
    .await?);
    if n == 0 {
        return Err(SetError::NoSuchArea);
    }
    if let Some(b) = building_id {
        let n: i64 = on_tx!(tx, |c| sqlx::query_scalar(
            "select count(*) from building where id = $1 and area_id = $2"
        )
        .bind(b)
        .bind(area_id)
        .fetch_one(c)
        .await?);
        if n == 0 {
            return Err(SetError::NoSuchBuilding);
        }
    }
    Ok(())
}

fn spec_json(s: &WindowSpec) -> serde_json::Value {
    serde_json::json!({
        "start": hhmm(s.start_minute),
        "end": hhmm(s.end_minute),
        "weekdays": s.weekdays,
    })
}

/// Clears the window of `kind` in force for the scope (if any) inside
/// `tx`; returns its spec.
async fn clear_tx(
    tx: &mut Tx,
    area_id: i64,
    building_id: Option<i64>,
    kind: WindowKind,
    now_ms: i64,
) -> Result<Option<WindowSpec>> {
    let row: Option<(i64, i64, i64)> = on_tx!(tx, |c| sqlx::query_as(
        "update policy_window set cleared_at_ms = $4
         where area_id = $1 and kind = $3 and cleared_at_ms is null
           and ((cast($2 as bigint) is null and building_id is null) or building_id = $2)
         returning start_minute, end_minute, weekdays"
    )
    .bind(area_id)
    .bind(building_id)
    .bind(kind.as_str())
    .bind(now_ms)
    .fetch_optional(c)
    .await?);
    Ok(row.map(|(s, e, w)| WindowSpec {
        start_minute: u16::try_from(s).unwrap_or(0),
        end_minute: u16::try_from(e).unwrap_or(0),
        weekdays: u8::try_from(w).unwrap_or(0),
    }))
}

/// Sets the window of `kind` for the area (or one building of it),
/// replacing the one in force, audited (`policy_window_set`, before and
/// after) in the same transaction. Two concurrent first settings: the
/// partial unique indexes let one in.
pub async fn set_window(
    db: &Db,
    actor: &Actor,
    area_id: AreaId,
    building_id: Option<i64>,
    kind: WindowKind,
    spec: WindowSpec,
    now_ms: i64,
) -> std::result::Result<i64, SetError> {
    let area = area_id.get();
    let mut tx = db.begin().await?;
    check_scope(&mut tx, area, building_id).await?;
    let before = clear_tx(&mut tx, area, building_id, kind, now_ms).await?;
    let id: i64 = on_tx!(&mut tx, |c| {
        sqlx::query_scalar(
        "insert into policy_window (area_id, building_id, kind, start_minute, end_minute, weekdays,
                                    operator_name, created_at_ms)
         values ($1, $2, $3, $4, $5, $6, $7, $8) returning id"
    )
    .bind(area)
    .bind(building_id)
    .bind(kind.as_str())
    .bind(i64::from(spec.start_minute))
    .bind(i64::from(spec.end_minute))
    .bind(i64::from(spec.weekdays))
    .bind(&actor.name)
    .bind(now_ms)
    .fetch_one(c)
    .await?
    });
    let mut after = spec_json(&spec);
    after["kind"] = kind.as_str().into();
    after["id"] = id.into();
    audit::append_tx(
        &mut tx,
        &Entry {
            actor,
            action: "policy_window_set",
            subject: &subject(area, building_id),
            before: before.as_ref().map(spec_json),
            after: Some(after),
        },
        now_ms,
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// Clears the window of `kind` of the scope, audited
/// (`policy_window_cleared`). `false` when none was in force (nothing
/// written). An occurrence under way ends at the next tick.
pub async fn clear_window(
    db: &Db,
    actor: &Actor,
    area_id: AreaId,
    building_id: Option<i64>,
    kind: WindowKind,
    now_ms: i64,
) -> std::result::Result<bool, SetError> {
    let area = area_id.get();
    let mut tx = db.begin().await?;
    check_scope(&mut tx, area, building_id).await?;
    let Some(before) = clear_tx(&mut tx, area, building_id, kind, now_ms).await? else {
        return Ok(false);
    };
    let mut b = spec_json(&before);
    b["kind"] = kind.as_str().into();
    audit::append_tx(
        &mut tx,
        &Entry {
            actor,
            action: "policy_window_cleared",
            subject: &subject(area, building_id),
            before: Some(b),
            after: None,
        },
        now_ms,
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// What one scheduler tick did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TickReport {
    /// Occurrences this tick opened (a window's start seen first here).
    pub opened: u64,
    /// Start commands queued (keep-power / trip).
    pub started: u64,
    /// End commands queued (release / close).
    pub ended: u64,
    /// Meters skipped at an edge (under keep-power; staff keep-power).
    pub skipped: u64,
    /// Occurrences finished.
    pub finished: u64,
}

fn scheduler() -> Actor {
    Actor {
        operator_id: None,
        name: SCHEDULER_NAME.to_owned(),
        client_ip: "local".to_owned(),
    }
}

/// One scheduler tick at `now_ms`: opens the occurrences of the windows
/// under way, queues the start command of at most `batch` meters, then
/// the end commands of ended occurrences within what is left of `batch`.
/// Safe to run on several nodes at once and to repeat.
pub async fn tick(db: &Db, tz: &TimeZone, now_ms: i64, batch: usize) -> Result<TickReport> {
    let mut rep = TickReport::default();
    // 1. Open the occurrences under way.
    let sql = format!("{WINDOW_SELECT} where w.cleared_at_ms is null order by w.id");
    let rows: Vec<RawWindow> = on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
        .fetch_all(p)
        .await?);
    for w in windows_of(rows)? {
        if let Some((start, end)) = w.spec.occurrence_at(now_ms, tz) {
            let n = on_db!(db, |p| sqlx::query(
                "insert into window_occurrence (window_id, start_ms, end_ms, created_at_ms)
                 values ($1, $2, $3, $4) on conflict (window_id, start_ms) do nothing"
            )
            .bind(w.id)
            .bind(start)
            .bind(end)
            .bind(now_ms)
            .execute(p)
            .await?
            .rows_affected());
            rep.opened += n;
        }
    }
    let mut left = i64::try_from(batch).unwrap_or(i64::MAX);
    // 2. Start edges of the open occurrences.
    let open: Vec<(i64, i64, Option<i64>, String)> = on_db!(db, |p| {
        sqlx::query_as(
        "select o.id, w.area_id, w.building_id, w.kind from window_occurrence o
         join policy_window w on w.id = o.window_id
         where o.ended_at_ms is null and o.start_ms <= $1 and $1 < o.end_ms and w.cleared_at_ms is null
         order by o.id"
    )
    .bind(now_ms)
    .fetch_all(p)
    .await?
    });
    for (occ, area, building, kind) in open {
        if left <= 0 {
            break;
        }
        let kind = WindowKind::parse(&kind)
            .ok_or_else(|| Error::Conflict(format!("policy_window kind {kind}")))?;
        let meters: Vec<i64> = on_db!(db, |p| {
            sqlx::query_scalar(
            "select m.id from meter m join room r on r.id = m.room_id
             where m.area_id = $1 and m.retired_at_ms is null
               and (r.building_id = $2
                    or (cast($2 as bigint) is null and not exists (
                        select 1 from policy_window wb where wb.building_id = r.building_id
                          and wb.kind = $3 and wb.cleared_at_ms is null)))
               and not exists (select 1 from window_meter wm
                               where wm.occurrence_id = $4 and wm.meter_id = m.id and wm.phase = 'start')
             order by m.id limit $5"
        )
        .bind(area)
        .bind(building)
        .bind(kind.as_str())
        .bind(occ)
        .bind(left)
        .fetch_all(p)
        .await?
        });
        for m in meters {
            left -= 1;
            match start_edge(db, occ, m, kind, now_ms).await? {
                Edge::Queued => rep.started += 1,
                Edge::Skipped => rep.skipped += 1,
                Edge::Taken => {}
            }
        }
    }
    // 3. End edges of the occurrences that ended (or whose window was cleared).
    let due: Vec<(i64, String)> = on_db!(db, |p| {
        sqlx::query_as(
        "select o.id, w.kind from window_occurrence o join policy_window w on w.id = o.window_id
         where o.ended_at_ms is null and (o.end_ms <= $1 or w.cleared_at_ms is not null)
         order by o.id"
    )
    .bind(now_ms)
    .fetch_all(p)
    .await?
    });
    for (occ, kind) in due {
        if left <= 0 {
            break;
        }
        let kind = WindowKind::parse(&kind)
            .ok_or_else(|| Error::Conflict(format!("policy_window kind {kind}")))?;
        let pending: Vec<(i64, i64)> = on_db!(db, |p| sqlx::query_as(
            "select s.meter_id, s.command_id from window_meter s
             where s.occurrence_id = $1 and s.phase = 'start' and s.command_id is not null
               and not exists (select 1 from window_meter e where e.occurrence_id = s.occurrence_id
                               and e.meter_id = s.meter_id and e.phase = 'end')
             order by s.meter_id limit $2"
        )
        .bind(occ)
        .bind(left + 1)
        .fetch_all(p)
        .await?);
        if pending.is_empty() {
            rep.finished += on_db!(db, |p| {
                sqlx::query(
                "update window_occurrence set ended_at_ms = $2 where id = $1 and ended_at_ms is null"
            )
            .bind(occ)
            .bind(now_ms)
            .execute(p)
            .await?
            .rows_affected()
            });
            continue;
        }
        for (m, start_cmd) in pending {
            if left <= 0 {
                break;
            }
            left -= 1;
            match end_edge(db, occ, m, start_cmd, kind, now_ms).await? {
                Edge::Queued => rep.ended += 1,
                Edge::Skipped => rep.skipped += 1,
                Edge::Taken => {}
            }
        }
    }
    Ok(rep)
}

enum Edge {
    /// This scheduler queued the edge's command.
    Queued,
    /// This scheduler recorded the edge as skipped.
    Skipped,
    /// Another scheduler had the edge already.
    Taken,
}

/// Claims the edge row; `false` when another scheduler has it.
async fn claim_edge(tx: &mut Tx, occ: i64, meter: i64, phase: &str, now_ms: i64) -> Result<bool> {
    let n = on_tx!(tx, |c| sqlx::query(
        "insert into window_meter (occurrence_id, meter_id, phase, created_at_ms)
         values ($1, $2, $3, $4) on conflict (occurrence_id, meter_id, phase) do nothing"
    )
    .bind(occ)
    .bind(meter)
    .bind(phase)
    .bind(now_ms)
    .execute(c)
    .await?
    .rows_affected());
    Ok(n == 1)
}

async fn mark_edge(
    tx: &mut Tx,
    occ: i64,
    meter: i64,
    phase: &str,
    command_id: Option<i64>,
    skipped: Option<&str>,
) -> Result<()> {
    let n = on_tx!(tx, |c| sqlx::query(
        "update window_meter set command_id = $4, skipped = $5
         where occurrence_id = $1 and meter_id = $2 and phase = $3"
    )
    .bind(occ)
    .bind(meter)
    .bind(phase)
    .bind(command_id)
    .bind(skipped)
    .execute(c)
    .await?
    .rows_affected());
    if n != 1 {
        return Err(Error::Conflict(format!(
            "window_meter ({occ}, {meter}, {phase}) vanished"
        )));
    }
    Ok(())
}

/// Queues `command` for `meter` in the scheduler's name, audited
/// (`relay_requested`), unless `unless_keep_power` and the meter is under
/// keep-power — decided in the insert's own statement.
async fn queue(
    tx: &mut Tx,
    meter: i64,
    command: &str,
    kind: WindowKind,
    unless_keep_power: bool,
    now_ms: i64,
) -> Result<Option<i64>> {
    let id: Option<i64> = on_tx!(tx, |c| {
        sqlx::query_scalar(
        "insert into relay_command (meter_id, command, reason, operator_id, operator_name, client_ip,
                                    state, created_at_ms, updated_at_ms)
         select $1, $2, $3, null, $4, 'local', 'queued', $5, $5
         where not ($6 and exists (select 1 from meter_state where meter_id = $1 and keep_power))
         returning id"
    )
    .bind(meter)
    .bind(command)
    .bind(kind.reason())
    .bind(SCHEDULER_NAME)
    .bind(now_ms)
    .bind(unless_keep_power)
    .fetch_optional(c)
    .await?
    });
    if let Some(id) = id {
        audit::append_tx(
            tx,
            &Entry {
                actor: &scheduler(),
                action: "relay_requested",
                subject: &format!("meter:{meter}"),
                before: None,
                after: Some(serde_json::json!({
                    "command_id": id,
                    "command": command,
                    "reason": kind.reason(),
                    "state": "queued",
                })),
            },
            now_ms,
        )
        .await?;
    }
    Ok(id)
}

async fn start_edge(db: &Db, occ: i64, meter: i64, kind: WindowKind, now_ms: i64) -> Result<Edge> {
    let mut tx = db.begin().await?;
    if !claim_edge(&mut tx, occ, meter, "start", now_ms).await? {
        return Ok(Edge::Taken);
    }
    let (cmd, _) = kind.edges();
    let id = queue(&mut tx, meter, cmd, kind, true, now_ms).await?;
    let skipped = id.is_none().then_some("keep_power");
    mark_edge(&mut tx, occ, meter, "start", id, skipped).await?;
    tx.commit().await?;
    Ok(if id.is_some() {
        Edge::Queued
    } else {
        Edge::Skipped
    })
}

async fn end_edge(
    db: &Db,
    occ: i64,
    meter: i64,
    start_cmd: i64,
    kind: WindowKind,
    now_ms: i64,
) -> Result<Edge> {
    let mut tx = db.begin().await?;
    if !claim_edge(&mut tx, occ, meter, "end", now_ms).await? {
        return Ok(Edge::Taken);
    }
    // A start command never sent: cancel it rather than undo it.
    let cancelled = on_tx!(&mut tx, |c| {
        sqlx::query(
        "update relay_command set state = 'cancelled', locked_by = null, locked_until_ms = null,
                error = 'the window ended before it was sent', updated_at_ms = $2
         where id = $1 and state = 'queued'"
    )
    .bind(start_cmd)
    .bind(now_ms)
    .execute(c)
    .await?
    .rows_affected()
    });
    let skipped = if cancelled == 1 {
        audit::append_tx(
            &mut tx,
            &Entry {
                actor: &scheduler(),
                action: "relay_cancelled",
                subject: &format!("meter:{meter}"),
                before: None,
                after: Some(serde_json::json!({
                    "command_id": start_cmd,
                    "reason": kind.reason(),
                    "state": "cancelled",
                })),
            },
            now_ms,
        )
        .await?;
        Some("start_cancelled")
    } else {
        let state: String = on_tx!(&mut tx, |c| sqlx::query_scalar(
            "select state from relay_command where id = $1"
        )
        .bind(start_cmd)
        .fetch_one(c)
        .await?);
        // Staff asked for keep-power after the scheduler did: it stays.
        let staff_keep: i64 = on_tx!(&mut tx, |c| sqlx::query_scalar(
            "select count(*) from relay_command
             where meter_id = $1 and id > $2 and command = 'keep_power' and operator_id is not null
               and state in ('queued', 'sending', 'done')"
        )
        .bind(meter)
        .bind(start_cmd)
        .fetch_one(c)
        .await?);
        if state == "failed" || state == "cancelled" {
            Some("start_not_done")
        } else if kind == WindowKind::NoCut && staff_keep > 0 {
            Some("staff_keep_power")
        } else {
            None
        }
    };
    let id = match skipped {
        Some(_) => None,
        None => queue(&mut tx, meter, kind.edges().1, kind, false, now_ms).await?,
    };
    mark_edge(&mut tx, occ, meter, "end", id, skipped).await?;
    tx.commit().await?;
    Ok(if id.is_some() {
        Edge::Queued
    } else {
        Edge::Skipped
    })
}

/// One meter's edge as recorded (tests, the console).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize)]
pub struct MeterEdge {
    /// The occurrence.
    pub occurrence_id: i64,
    /// The meter.
    pub meter_id: i64,
    /// `start` or `end`.
    pub phase: String,
    /// The command queued, if any.
    pub command_id: Option<i64>,
    /// Why none was queued.
    pub skipped: Option<String>,
}

/// The edges recorded for meter `meter_id`, oldest first.
pub async fn edges_of_meter(db: &Db, meter_id: i64) -> Result<Vec<MeterEdge>> {
    Ok(on_db!(db, |p| sqlx::query_as(
        "select occurrence_id, meter_id, phase, command_id, skipped from window_meter
         where meter_id = $1 order by occurrence_id, phase desc"
    )
    .bind(meter_id)
    .fetch_all(p)
    .await?))
}
