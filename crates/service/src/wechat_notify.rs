//! The WeChat sender (issue 15 item 3): pushes the outbox rows that
//! store::notify enqueued with the inbox messages, as template messages to
//! students who follow the official account.
//!
//! One [`tick`] claims up to `batch` due rows with a lease
//! (store::wechat_outbox), and for each decides, in this order:
//! not following / kind switched off / no template configured → skipped;
//! waited longer than `give_up_after` → failed (counted, visible);
//! quiet hours and not urgent → wait until they end; otherwise
//! [`wechat::WechatApi::send_template`]. WeChat's answer then decides:
//! ok → sent; 43004 → the student is marked not following and the row is
//! skipped (nothing else fails); 40037 (template id rejected) → failed;
//! anything else (43101, 43117, 45009, busy, network) → retried with
//! exponential backoff, within the `give_up_after` bound.
//!
//! The access token is the client's (cached, fetched once for many sends,
//! fetched again when WeChat answers 40001/42001). Every finish is fenced by
//! the claim's epoch: a sender whose lease lapsed cannot record an outcome
//! over a newer claim.

use std::collections::BTreeMap;
use std::time::Duration;
use store::message::MessageArgs;
use store::wechat_outbox::{self, Claimed, Follows, Language, Outcome, Prefs};
use wechat::{Keyword, TemplateMessage, WechatApi, errcode};

/// WeChat's limit on a keyword value (longer ones are silently cut).
pub const KEYWORD_CHARS_MAX: usize = 20;

/// Template ids per message kind, as chosen in this deployment's official
/// account console. A kind without one is in-app only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Templates {
    /// "Purchase delivered": keywords `thing1` (room), `thing2` (what),
    /// `phrase3` (status), `time4` (when).
    pub delivered: Option<String>,
    /// "Low balance": `thing1` (room), `thing2` (remaining), `thing3` (days
    /// left or advice), `time4` (when).
    pub low_balance: Option<String>,
    /// "Power cut for balance": `thing1` (room), `thing2` (what happened),
    /// `thing3` (what to do), `time4` (when).
    pub power_cut: Option<String>,
}

impl Templates {
    /// The template of a message kind.
    pub fn for_kind(&self, kind: &str) -> Option<&str> {
        match kind {
            "delivered" => self.delivered.as_deref(),
            "low_balance" => self.low_balance.as_deref(),
            "power_cut" => self.power_cut.as_deref(),
            _ => None,
        }
        .filter(|t| !t.is_empty())
    }

    /// The kinds that have no template (logged once at startup).
    pub fn missing(&self) -> Vec<&'static str> {
        [
            ("delivered", &self.delivered),
            ("low_balance", &self.low_balance),
            ("power_cut", &self.power_cut),
        ]
        .into_iter()
        .filter(|(_, t)| t.as_deref().is_none_or(str::is_empty))
        .map(|(k, _)| k)
        .collect()
    }
}

/// How the sender runs.
#[derive(Debug, Clone)]
pub struct SenderSettings {
    /// Template ids.
    pub templates: Templates,
    /// Campus time zone (quiet hours, times in messages).
    pub tz: domain::time::CampusTz,
    /// A claim's lease.
    pub lease: Duration,
    /// Rows per tick.
    pub batch: i64,
    /// First retry delay; doubles per attempt.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// A row not sent this long after it was enqueued fails.
    pub give_up_after: Duration,
    /// Opened when the student taps the message (our H5 origin), if any.
    pub url: Option<String>,
}

impl SenderSettings {
    /// Defaults: 60 s lease, 50 rows, backoff 30 s doubling to 30 min, give
    /// up after 12 h.
    pub fn new(templates: Templates, tz: domain::time::CampusTz) -> Self {
        Self {
            templates,
            tz,
            lease: Duration::from_secs(60),
            batch: 50,
            backoff_base: Duration::from_secs(30),
            backoff_max: Duration::from_secs(30 * 60),
            give_up_after: Duration::from_secs(12 * 3600),
            url: None,
        }
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SendReport {
    /// Rows claimed.
    pub claimed: u64,
    /// Sent.
    pub sent: u64,
    /// Skipped (not following, switched off, no template, 43004).
    pub skipped: u64,
    /// Waiting for the end of quiet hours.
    pub deferred: u64,
    /// To be retried.
    pub retried: u64,
    /// Given up.
    pub failed: u64,
    /// Finishes refused because the lease was lost.
    pub lost: u64,
}

/// The end of the recipient's quiet hours, when `now_ms` falls in them.
pub fn quiet_until_ms(now_ms: i64, tz: &domain::time::CampusTz, prefs: &Prefs) -> Option<i64> {
    let (start, end) = (prefs.quiet_start_min, prefs.quiet_end_min);
    if start == end {
        return None;
    }
    let today = domain::time::local_date(now_ms, tz.tz());
    let day_start = domain::time::day_start_ms(today, tz.tz());
    let minute = (now_ms - day_start).div_euclid(60_000);
    let at_minute_of = |date: jiff::civil::Date, m: i64| {
        date.to_datetime(jiff::civil::Time::midnight())
            .checked_add(jiff::Span::new().minutes(m))
            .ok()
            .and_then(|dt| dt.to_zoned_datetime(tz.tz().clone()).ok())
            .map_or(now_ms, |z| z.timestamp().as_millisecond())
    };
    if start < end {
        (start <= minute && minute < end).then(|| at_minute_of(today, end))
    } else if minute >= start {
        let tomorrow = today.tomorrow().unwrap_or(today);
        Some(at_minute_of(tomorrow, end))
    } else if minute < end {
        Some(at_minute_of(today, end))
    } else {
        None
    }
}

/// A keyword value within WeChat's limits: one line, at most
/// [`KEYWORD_CHARS_MAX`] characters.
fn keyword(s: &str) -> Keyword {
    Keyword {
        value: s
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(KEYWORD_CHARS_MAX)
            .collect(),
    }
}

fn kwh_text(centikwh: i64) -> String {
    let c = centikwh.max(0);
    format!("{}.{:02} kWh", c / 100, c % 100)
}

/// The keyword fields of a claimed row in the recipient's language (the
/// texts are short by design: WeChat cuts each at 20 characters and has no
/// first/remark lines since 2023).
pub fn render(c: &Claimed, now_ms: i64, tz: &domain::time::CampusTz) -> BTreeMap<String, Keyword> {
    let en = c.prefs.language == Language::En;
    let place = c.args.message.place();
    let room = if en {
        format!("{} {}", place.building_en, place.room)
    } else {
        format!("{}{}", place.building_zh, place.room)
    };
    let when = jiff::Timestamp::from_millisecond(now_ms)
        .map(|t| {
            t.to_zoned_datetime(tz.tz().clone())
                .strftime("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_default();
    let mut data = BTreeMap::new();
    data.insert("thing1".to_owned(), keyword(&room));
    match &c.args.message {
        MessageArgs::Delivered { kwh, .. } => {
            let what = match (&c.args.paid_by_other, en) {
                (Some(who), false) if !who.is_empty() => format!("室友 {who} 购电 {kwh} kWh"),
                (Some(_), false) => format!("室友购电 {kwh} kWh"),
                (Some(who), true) if !who.is_empty() => format!("{who} bought {kwh} kWh"),
                (Some(_), true) => format!("Roommate: {kwh} kWh"),
                (None, false) => format!("购电 {kwh} kWh"),
                (None, true) => format!("{kwh} kWh bought"),
            };
            data.insert("thing2".to_owned(), keyword(&what));
            data.insert(
                "phrase3".to_owned(),
                keyword(if en { "Delivered" } else { "已到账" }),
            );
        }
        MessageArgs::LowBalance {
            remaining_centikwh, ..
        } => {
            let left = if en {
                format!("{} left", kwh_text(*remaining_centikwh))
            } else {
                format!("剩余 {}", kwh_text(*remaining_centikwh))
            };
            let advice = match (c.args.days_left, en) {
                (Some(d), false) => format!("按近期用量约可用 {d} 天"),
                (Some(1), true) => "About 1 day left".to_owned(),
                (Some(d), true) => format!("About {d} days left"),
                (None, false) => "请及时购电".to_owned(),
                (None, true) => "Please top up soon".to_owned(),
            };
            data.insert("thing2".to_owned(), keyword(&left));
            data.insert("thing3".to_owned(), keyword(&advice));
        }
        MessageArgs::PowerCut { .. } => {
            let (what, todo) = if en {
                ("Power cut: no balance", "Top up to restore power")
            } else {
                ("余额不足，已断电", "购电到账后即可恢复供电")
            };
            data.insert("thing2".to_owned(), keyword(what));
            data.insert("thing3".to_owned(), keyword(todo));
        }
        // Kinds without a template never get here (skipped before).
        _ => {}
    }
    data.insert("time4".to_owned(), keyword(&when));
    data
}

/// The delay before retry number `attempts` (1 = after the first failure).
pub fn backoff_ms(s: &SenderSettings, attempts: i64) -> i64 {
    let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    ms(s.backoff_base)
        .saturating_mul(1_i64 << exp)
        .min(ms(s.backoff_max))
}

/// Decides (and, when it comes to that, sends) one claimed row.
async fn decide(api: &dyn WechatApi, s: &SenderSettings, c: &Claimed, now_ms: i64) -> Outcome {
    let skip = |reason: &str| Outcome::Skipped {
        reason: reason.to_owned(),
        errcode: None,
    };
    if c.follows == Follows::No {
        return skip("not following");
    }
    if c.kind_disabled {
        return skip("switched off");
    }
    let Some(template_id) = s.templates.for_kind(&c.kind) else {
        return skip("no template");
    };
    let give_up_at_ms = c.created_at_ms.saturating_add(ms(s.give_up_after));
    if now_ms >= give_up_at_ms {
        return Outcome::Failed {
            errcode: None,
            error: "not sent within the wait bound".to_owned(),
        };
    }
    if !c.urgent
        && let Some(at_ms) = quiet_until_ms(now_ms, &s.tz, &c.prefs)
    {
        return Outcome::Defer { at_ms };
    }
    let message = TemplateMessage {
        touser: c.openid.clone(),
        template_id: template_id.to_owned(),
        url: s.url.clone(),
        // WeChat drops a repeat of the same id for a while: one more guard
        // against a send whose answer was lost.
        client_msg_id: Some(format!("dw{}", c.id)),
        data: render(c, now_ms, &s.tz),
    };
    match api.send_template(&message).await {
        Ok(msgid) => Outcome::Sent { msgid },
        Err(e) => {
            let code = e.errcode();
            match code {
                Some(errcode::REQUIRE_SUBSCRIBE) => Outcome::Skipped {
                    reason: "require subscribe".to_owned(),
                    errcode: code,
                },
                Some(errcode::INVALID_OPENID) => Outcome::Skipped {
                    reason: "invalid openid".to_owned(),
                    errcode: code,
                },
                Some(errcode::INVALID_TEMPLATE_ID) => Outcome::Failed {
                    errcode: code,
                    error: e.to_string(),
                },
                _ => {
                    let at_ms = now_ms.saturating_add(backoff_ms(s, c.attempts));
                    if at_ms >= give_up_at_ms {
                        Outcome::Failed {
                            errcode: code,
                            error: e.to_string(),
                        }
                    } else {
                        Outcome::Retry {
                            at_ms,
                            errcode: code,
                            error: e.to_string(),
                        }
                    }
                }
            }
        }
    }
}

/// One pass of the sender as `worker` at `now_ms`.
pub async fn tick(
    db: &store::Db,
    api: &dyn WechatApi,
    s: &SenderSettings,
    worker: &str,
    now_ms: i64,
) -> store::Result<SendReport> {
    let claimed = wechat_outbox::claim(db, worker, now_ms, ms(s.lease), s.batch).await?;
    let mut r = SendReport {
        claimed: claimed.len() as u64,
        ..SendReport::default()
    };
    for c in &claimed {
        let outcome = decide(api, s, c, now_ms).await;
        let finished = if let Outcome::Skipped {
            errcode: Some(errcode::REQUIRE_SUBSCRIBE),
            ..
        } = outcome
        {
            wechat_outbox::finish_not_following(db, c, now_ms).await
        } else {
            wechat_outbox::finish(db, c, &outcome, now_ms).await
        };
        match finished {
            Ok(()) => {}
            Err(store::Error::LeaseLost(e)) => {
                tracing::warn!(outbox.id = c.id, error = %e, "wechat outbox row re-claimed meanwhile; outcome dropped");
                r.lost += 1;
                continue;
            }
            Err(e) => return Err(e),
        }
        match &outcome {
            Outcome::Sent { .. } => r.sent += 1,
            Outcome::Skipped { .. } => r.skipped += 1,
            Outcome::Defer { .. } => r.deferred += 1,
            Outcome::Retry { errcode, .. } => {
                tracing::info!(outbox.id = c.id, errcode = ?errcode, "wechat send failed; retrying later");
                r.retried += 1;
            }
            Outcome::Failed { errcode, error } => {
                tracing::warn!(outbox.id = c.id, errcode = ?errcode, error = %error, "wechat message given up");
                r.failed += 1;
            }
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i16, mo: i8, d: i8, h: i8, mi: i8, tz: &domain::time::CampusTz) -> i64 {
        jiff::civil::date(y, mo, d)
            .at(h, mi, 0, 0)
            .to_zoned_datetime(tz.tz().clone())
            .unwrap()
            .timestamp()
            .as_millisecond()
    }

    #[test]
    fn quiet_hours_wait_until_morning_campus_time() {
        let tz = domain::time::CampusTz::default();
        let p = Prefs::default();
        let morning = at(2026, 12, 7, 7, 0, &tz);
        assert_eq!(
            quiet_until_ms(at(2026, 12, 6, 23, 30, &tz), &tz, &p),
            Some(morning)
        );
        assert_eq!(
            quiet_until_ms(at(2026, 12, 7, 2, 0, &tz), &tz, &p),
            Some(morning)
        );
        assert_eq!(quiet_until_ms(at(2026, 12, 7, 7, 0, &tz), &tz, &p), None);
        assert_eq!(quiet_until_ms(at(2026, 12, 6, 22, 59, &tz), &tz, &p), None);
        let day = Prefs {
            quiet_start_min: 12 * 60,
            quiet_end_min: 14 * 60,
            ..Prefs::default()
        };
        assert_eq!(
            quiet_until_ms(at(2026, 12, 6, 13, 0, &tz), &tz, &day),
            Some(at(2026, 12, 6, 14, 0, &tz))
        );
        let none = Prefs {
            quiet_start_min: 0,
            quiet_end_min: 0,
            ..Prefs::default()
        };
        assert_eq!(quiet_until_ms(at(2026, 12, 6, 3, 0, &tz), &tz, &none), None);
    }

    #[test]
    fn keywords_are_one_line_and_at_most_20_characters() {
        let k = keyword("一二三四五六七八九十一二三四五六七八九十多\n");
        assert_eq!(k.value.chars().count(), KEYWORD_CHARS_MAX);
        assert!(!keyword("a\nb").value.contains('\n'));
    }

    #[test]
    fn backoff_doubles_up_to_its_bound() {
        let s = SenderSettings::new(Templates::default(), domain::time::CampusTz::default());
        assert_eq!(backoff_ms(&s, 1), 30_000);
        assert_eq!(backoff_ms(&s, 2), 60_000);
        assert_eq!(backoff_ms(&s, 40), 30 * 60_000);
    }
}
