//! The history part of a meter's console page (issue 14 item 4): the
//! daily usage chart of the last 30 days (the student overview's
//! `pages::chart`), the newest events and readings, and the students bound
//! to it with their openid and phone masked.

use super::{StaffResult, fmt_seconds};
use crate::AppState;
use crate::i18n::Lang;
use crate::pages::chart::{Bar, Chart, usage_chart};

/// Days the chart shows.
const CHART_DAYS: i64 = 30;
/// Events and readings shown.
const ROWS: i64 = 30;

/// An event line.
pub struct EventLine {
    /// When, campus time.
    pub at: String,
    /// The kind.
    pub kind: String,
    /// Its detail.
    pub detail: String,
}

/// A reading line.
pub struct ReadingLine {
    /// When, campus time.
    pub at: String,
    /// The quantity, in the page language.
    pub quantity: String,
    /// The value with its unit.
    pub value: String,
}

/// A binding line, masked.
pub struct BinderLine {
    /// `o6_b****Xy3` style.
    pub openid: String,
    /// `张**`.
    pub name: String,
    /// `138****8000`.
    pub phone: String,
    /// Default meter of the student.
    pub is_default: bool,
    /// Bound since.
    pub since: String,
}

/// What `templates/staff/meter_history.html` shows.
pub struct MeterHistory {
    /// Newest events.
    pub events: Vec<EventLine>,
    /// Newest readings.
    pub readings: Vec<ReadingLine>,
    /// Bound students.
    pub binders: Vec<BinderLine>,
}

/// Keeps the first 4 and last 3 characters of an openid.
fn mask_openid(s: &str) -> String {
    let cs: Vec<char> = s.chars().collect();
    if cs.len() <= 8 {
        return "****".to_owned();
    }
    let head: String = cs[..4].iter().collect();
    let tail: String = cs[cs.len() - 3..].iter().collect();
    format!("{head}****{tail}")
}

/// `13800138000` → `138****8000`; anything else shows a dash.
fn mask_phone(p: &str) -> String {
    if p.len() == 11 && p.is_ascii() {
        format!("{}****{}", &p[..3], &p[7..])
    } else {
        "—".to_owned()
    }
}

/// First character and stars.
fn mask_name(n: &str) -> String {
    let mut cs = n.chars();
    match cs.next() {
        None => "—".to_owned(),
        Some(f) => std::iter::once(f).chain(cs.take(7).map(|_| '*')).collect(),
    }
}

fn quantity(l: Lang, q: &str, v: i64) -> (String, String) {
    match q {
        "remaining" => (
            l.t("staff-history-q-remaining"),
            format!("{} kWh", domain::CentiKwh::new(v)),
        ),
        "total" => (
            l.t("staff-history-q-total"),
            format!("{} kWh", domain::CentiKwh::new(v)),
        ),
        "voltage" => (
            l.t("staff-history-q-voltage"),
            format!("{}.{} V", v / 10, (v % 10).abs()),
        ),
        "power" => (l.t("staff-history-q-power"), format!("{v} W")),
        other => (other.to_owned(), v.to_string()),
    }
}

/// The chart and the history of meter `meter_id`.
pub async fn of(state: &AppState, l: Lang, meter_id: i64) -> StaffResult<(Chart, MeterHistory)> {
    let db = state.db();
    let tz = crate::pages::campus_tz(state);
    let now = state.settings().staff.clock.now_ms();
    let today = domain::time::day_number(domain::time::local_date(now, tz));
    let days = store::meters::days(db, meter_id, today - CHART_DAYS, today - 1).await?;
    let bars: Vec<Bar> = ((today - CHART_DAYS)..today)
        .map(|day| Bar {
            day,
            usage_centikwh: days
                .iter()
                .find(|d| d.day == day)
                .and_then(|d| d.usage_centikwh),
        })
        .collect();
    let events = store::meter_history::recent_events(db, meter_id, ROWS)
        .await?
        .into_iter()
        .map(|e| EventLine {
            at: fmt_seconds(e.at_ms, tz),
            kind: e.kind,
            detail: e.detail,
        })
        .collect();
    let readings = store::meter_history::recent_readings(db, meter_id, ROWS)
        .await?
        .into_iter()
        .map(|r| {
            let (quantity, value) = quantity(l, &r.quantity, r.value);
            ReadingLine {
                at: fmt_seconds(r.at_ms, tz),
                quantity,
                value,
            }
        })
        .collect();
    let binders = store::meter_history::binders(db, meter_id)
        .await?
        .into_iter()
        .map(|b| BinderLine {
            openid: mask_openid(&b.openid),
            name: mask_name(&b.name),
            phone: mask_phone(&b.phone),
            is_default: b.is_default,
            since: fmt_seconds(b.created_at_ms, tz),
        })
        .collect();
    Ok((
        usage_chart(&bars),
        MeterHistory {
            events,
            readings,
            binders,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::{mask_name, mask_openid, mask_phone};

    #[test]
    fn masks() {
        assert_eq!(mask_openid("oAbCdEfGhIjKlMn123"), "oAbC****123");
        assert_eq!(mask_openid("short"), "****");
        assert_eq!(mask_phone("13800138000"), "138****8000");
        assert_eq!(mask_phone("123"), "—");
        assert_eq!(mask_name("张三丰"), "张**");
    }
}
