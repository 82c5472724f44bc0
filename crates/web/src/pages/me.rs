//! My info (S14): profile, messages inbox, my meters (default, unbind,
//! change a meter's password).

use super::bind::{ClientIp, begin_attempt, too_many_attempts, verify_password};
use super::overview::Balance;
use super::{
    Acting, CsrfOnly, Ctx, PageError, PageResult, PathId, Posted, Shell, Tab, area_name, campus_tz,
    csrf_forms, energy_or_dash, fmt_time, html, see,
};
use crate::AppState;
use crate::i18n::{Arg, Lang};
use askama::Template;
use axum::extract::{Query, State};
use serde::Deserialize;
use store::message::{MessageArgs, MessageContent};
use store::students::BoundMeter;

/// Messages shown in the inbox.
const MESSAGES_MAX: i64 = 100;
/// Longest name, characters.
const NAME_CHARS_MAX: usize = 20;

/// The "my info" page.
#[derive(Template)]
#[template(path = "me.html")]
struct MePage<'a> {
    l: Lang,
    shell: Shell<'a>,
    name: String,
    phone: String,
    unread: i64,
}

/// `GET /me`.
pub async fn page(State(state): State<AppState>, ctx: Ctx) -> PageResult {
    let l = ctx.l;
    let s = store::students::by_id(state.db(), ctx.student.id)
        .await?
        .ok_or(PageError::NotFound)?;
    html(&MePage {
        l,
        shell: ctx.shell("me-title", Tab::Me),
        name: if s.name.is_empty() {
            l.t("me-no-name")
        } else {
            s.name
        },
        phone: s.phone,
        unread: ctx.student.unread,
    })
}

/// The profile form.
#[derive(Debug, Deserialize)]
pub struct ProfileForm {
    csrf: String,
    name: String,
    phone: String,
}
csrf_forms!(ProfileForm);

/// The profile page.
#[derive(Template)]
#[template(path = "profile.html")]
struct ProfilePage<'a> {
    l: Lang,
    shell: Shell<'a>,
    name: &'a str,
    phone: &'a str,
    name_error: Option<String>,
    phone_error: Option<String>,
    saved: bool,
    /// The form's limit is the server's.
    name_max: usize,
}

/// `GET /me/profile`.
pub async fn profile_page(State(state): State<AppState>, ctx: Ctx) -> PageResult {
    let s = store::students::by_id(state.db(), ctx.student.id)
        .await?
        .ok_or(PageError::NotFound)?;
    profile_form(&ctx, &s.name, &s.phone, None, None, false)
}

fn profile_form(
    ctx: &Ctx,
    name: &str,
    phone: &str,
    name_error: Option<String>,
    phone_error: Option<String>,
    saved: bool,
) -> PageResult {
    html(&ProfilePage {
        l: ctx.l,
        shell: Shell::new(
            ctx.l,
            "profile-title",
            Some(&ctx.student),
            Tab::Me,
            "/me/profile",
        ),
        name,
        phone,
        name_error,
        phone_error,
        saved,
        name_max: NAME_CHARS_MAX,
    })
}

/// A mainland mobile number: 11 digits starting with 1 (spaces and dashes
/// ignored); empty is allowed (the field is optional).
fn parse_phone(s: &str) -> Option<String> {
    let digits: String = super::normalise_digits(s)
        .chars()
        .filter(|c| !matches!(c, ' ' | '-'))
        .collect();
    if digits.is_empty() {
        return Some(digits);
    }
    let d = digits.strip_prefix("+86").unwrap_or(&digits);
    (d.len() == 11 && d.starts_with('1') && d.bytes().all(|b| b.is_ascii_digit()))
        .then(|| d.to_owned())
}

/// `POST /me/profile`.
pub async fn profile_submit(
    State(state): State<AppState>,
    Posted { ctx, form: f }: Posted<ProfileForm>,
) -> PageResult {
    let l = ctx.l;
    let name = f.name.trim();
    if name.chars().count() > NAME_CHARS_MAX || name.chars().any(char::is_control) {
        let m = l.t1("profile-name-too-long", "max", NAME_CHARS_MAX);
        return profile_form(&ctx, &f.name, &f.phone, Some(m), None, false);
    }
    let Some(phone) = parse_phone(&f.phone) else {
        let m = l.t("profile-phone-invalid");
        return profile_form(&ctx, &f.name, &f.phone, None, Some(m), false);
    };
    store::students::update_profile(state.db(), ctx.student.id, name, &phone).await?;
    profile_form(&ctx, name, &phone, None, None, true)
}

/// The inbox.
#[derive(Template)]
#[template(path = "messages.html")]
struct MessagesPage<'a> {
    l: Lang,
    shell: Shell<'a>,
    msgs: Vec<MessageRow>,
}

/// A message as shown.
struct MessageRow {
    id: i64,
    title: String,
    body: String,
    at: String,
    /// Unread until this visit (shown with a "new" badge).
    new: bool,
}

/// `GET /me/messages`. Opening the inbox is what reads it (issue 11 item
/// 14): the messages shown are marked read as the page is built, and the
/// ones that were unread carry a "new" badge on this visit only.
pub async fn messages_page(State(state): State<AppState>, mut ctx: Ctx) -> PageResult {
    let l = ctx.l;
    let tz = campus_tz(&state);
    let msgs = store::students::messages(state.db(), ctx.student.id, MESSAGES_MAX).await?;
    let unread: Vec<i64> = msgs
        .iter()
        .filter(|m| m.read_at_ms.is_none())
        .map(|m| m.id)
        .collect();
    let marked =
        store::students::mark_shown_read(state.db(), ctx.student.id, &unread, store::now_ms())
            .await?;
    // The menu's badge counts what is still unread after this page.
    ctx.student.unread = (ctx.student.unread - i64::try_from(marked).unwrap_or(0)).max(0);
    let rows = msgs
        .into_iter()
        .map(|m| {
            let (title, body) = message_texts(l, &m.content);
            MessageRow {
                id: m.id,
                at: fmt_time(m.created_at_ms, tz),
                new: m.read_at_ms.is_none(),
                title,
                body,
            }
        })
        .collect();
    html(&MessagesPage {
        l,
        shell: ctx.shell("messages-title", Tab::Me),
        msgs: rows,
    })
}

/// Title and body of a message in the reader's language: a typed message
/// from the catalog (`msg-<kind>-title`, `msg-<kind>-body`, with the meter's
/// `$building`, `$room` and `$meter` and the kind's own arguments); an old
/// row as it was stored.
fn message_texts(l: Lang, content: &MessageContent) -> (String, String) {
    let args = match content {
        MessageContent::Text { title, body } => return (title.clone(), body.clone()),
        MessageContent::Typed(args) => args,
    };
    let p = args.place();
    let mut named: Vec<(&str, Arg)> = vec![
        (
            "building",
            area_name(l, &p.building_zh, &p.building_en).into(),
        ),
        ("room", (&p.room).into()),
        ("meter", (&p.meter).into()),
    ];
    let stem = match args {
        MessageArgs::Delivered {
            kwh, out_trade_no, ..
        } => {
            named.push(("kwh", kwh.into()));
            named.push(("order", out_trade_no.into()));
            "delivered"
        }
        MessageArgs::LowBalance {
            remaining_centikwh, ..
        } => {
            let remaining = domain::CentiKwh::new(*remaining_centikwh).to_string();
            named.push(("remaining", remaining.into()));
            "low-balance"
        }
        MessageArgs::BinderAdded { .. } => "binder-added",
        MessageArgs::UnboundByPasswordChange { .. } => "unbound-by-password-change",
        MessageArgs::PasswordResetByStaff { .. } => "password-reset-by-staff",
        MessageArgs::PowerCut { .. } => "power-cut",
    };
    (
        l.t_args(&format!("msg-{stem}-title"), &named),
        l.t_args(&format!("msg-{stem}-body"), &named),
    )
}

/// My meters.
#[derive(Template)]
#[template(path = "meters.html")]
struct MetersPage<'a> {
    l: Lang,
    shell: Shell<'a>,
    meters: Vec<MeterCard<'a>>,
    /// What was just done, confirmed in green.
    done: Option<String>,
}

/// Query of "my meters": `done=default|unbound|bound`.
#[derive(Debug, Deserialize)]
pub struct MetersQuery {
    done: Option<String>,
}

/// One bound meter on "my meters".
struct MeterCard<'a> {
    b: &'a BoundMeter,
    place: String,
    remaining: String,
    balance: Balance,
    /// Others bound to it, masked: "张** · 138****8000 · date".
    others: Vec<String>,
}

/// `GET /me/meters`.
pub async fn meters_page(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(q): Query<MetersQuery>,
) -> PageResult {
    let l = ctx.l;
    let tz = campus_tz(&state);
    let mut ms = store::students::bindings(state.db(), ctx.student.id).await?;
    super::sort_meters(&mut ms);
    let mut meters = Vec::with_capacity(ms.len());
    for m in &ms {
        // Who else is bound (masked): a binder who knows the password can
        // remove them by changing it (docs/SECURITY.md).
        let others = store::students::co_binders(state.db(), ctx.student.id, m.binding_id)
            .await?
            .iter()
            .map(|o| {
                format!(
                    "{} · {} · {}",
                    mask_name(l, &o.name),
                    mask_phone(&o.phone),
                    fmt_time(o.created_at_ms, tz)
                )
            })
            .collect();
        meters.push(MeterCard {
            b: m,
            place: super::overview::place(l, m),
            remaining: energy_or_dash(m.remaining_centikwh),
            balance: Balance::of(m),
            others,
        });
    }
    html(&MetersPage {
        l,
        shell: ctx.shell("meters-title", Tab::Me).with_script(),
        meters,
        done: match q.done.as_deref() {
            Some("default") => Some(l.t("meters-done-default")),
            Some("unbound") => Some(l.t("meters-done-unbound")),
            Some("bound") => Some(l.t("meters-done-bound")),
            _ => None,
        },
    })
}

/// `POST /me/meters/{id}/default`.
pub async fn meter_default(
    State(state): State<AppState>,
    PathId(id): PathId,
    Posted { ctx, .. }: Posted<CsrfOnly>,
) -> PageResult {
    store::students::set_default(state.db(), ctx.student.id, id).await?;
    see("/me/meters?done=default")
}

/// `POST /me/meters/{id}/unbind`.
pub async fn meter_unbind(
    State(state): State<AppState>,
    PathId(id): PathId,
    Posted { ctx, .. }: Posted<CsrfOnly>,
) -> PageResult {
    store::students::unbind(state.db(), ctx.student.id, id).await?;
    tracing::info!(
        student.id = ctx.student.id,
        binding.id = id,
        "meter unbound"
    );
    see("/me/meters?done=unbound")
}

/// Query of the password page.
#[derive(Debug, Deserialize)]
pub struct PasswordQuery {
    done: Option<u8>,
}

/// `GET /me/meters/{id}/password`.
pub async fn password_page(
    State(state): State<AppState>,
    ctx: Ctx,
    PathId(id): PathId,
    Query(q): Query<PasswordQuery>,
) -> PageResult {
    let m = store::students::binding(state.db(), ctx.student.id, id)
        .await?
        .ok_or(PageError::NotFound)?;
    password_form(&ctx, &m, None, q.done == Some(1))
}

/// The page that changes a meter's password.
#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage<'a> {
    l: Lang,
    shell: Shell<'a>,
    m: &'a BoundMeter,
    place: String,
    error: Option<String>,
    done: bool,
}

fn password_form(ctx: &Ctx, m: &BoundMeter, error: Option<String>, done: bool) -> PageResult {
    let l = ctx.l;
    let here = format!("/me/meters/{}/password", m.binding_id);
    html(&PasswordPage {
        l,
        shell: Shell::new(l, "password-title", Some(&ctx.student), Tab::Me, &here),
        place: super::overview::place(l, m),
        m,
        error,
        done,
    })
}

/// The password form.
#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    csrf: String,
    current: String,
    new: String,
    confirm: String,
}
csrf_forms!(PasswordForm);

/// `POST /me/meters/{id}/password`: needs the current password; guesses of
/// it are throttled and audited like binding attempts.
pub async fn password_submit(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    PathId(id): PathId,
    Acting(Posted { ctx, form: f }): Acting<PasswordForm>,
) -> PageResult {
    let l = ctx.l;
    let student = &ctx.student;
    let m = store::students::binding(state.db(), student.id, id)
        .await?
        .ok_or(PageError::NotFound)?;
    let refuse = |key: &str| password_form(&ctx, &m, Some(l.t(key)), false);
    if f.new != f.confirm {
        return refuse("password-differ");
    }
    if domain::password::check_format(&f.new).is_err() {
        return refuse("password-not-6-digits");
    }
    if f.new == domain::password::DEFAULT_PASSWORD {
        return refuse("password-not-default");
    }
    let now = store::now_ms();
    let attempt = match begin_attempt(&state, student.id, &m.address, &ip, true, now).await? {
        Ok(id) => id,
        Err(wait) => return password_form(&ctx, &m, Some(too_many_attempts(l, wait)), false),
    };
    let secret = store::students::bound_meter_secret(state.db(), student.id, id)
        .await?
        .ok_or(PageError::NotFound)?;
    let ok = verify_password(f.current.clone(), Some(secret.password_hash.clone())).await;
    if !ok {
        return refuse("password-current-wrong");
    }
    attempt.succeeded(state.service()).await?;
    let new_hash = domain::password::hash(&f.new, rand::random::<[u8; 16]>())
        .map_err(|e| store::Error::Conflict(e.to_string()))?;
    // Everyone else bound to the meter has not proven the new password:
    // they are unbound and told, in the same transaction (docs/SECURITY.md).
    let removed = store::students::change_meter_password(
        state.db(),
        student.id,
        secret.meter_id,
        secret.password_hash.as_deref(),
        &new_hash,
        now,
    )
    .await?;
    let Some(removed) = removed else {
        return refuse("password-raced");
    };
    tracing::info!(
        student.id = student.id,
        meter.id = secret.meter_id,
        unbound = removed,
        "meter password changed"
    );
    see(&format!("/me/meters/{id}/password?done=1"))
}

/// `张三丰` → `张**`; empty → "WeChat user".
fn mask_name(l: Lang, name: &str) -> String {
    let mut cs = name.chars();
    match cs.next() {
        None => l.t("wechat-user"),
        Some(first) => std::iter::once(first)
            .chain(cs.map(|_| '*'))
            .collect::<String>()
            .chars()
            .take(8)
            .collect(),
    }
}

/// `13800138000` → `138****8000`; anything shorter shows nothing.
fn mask_phone(phone: &str) -> String {
    if phone.len() == 11 && phone.is_ascii() {
        format!("{}****{}", &phone[..3], &phone[7..])
    } else {
        "—".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::{mask_name, mask_phone, parse_phone};

    #[test]
    fn masks() {
        assert_eq!(mask_name(crate::i18n::Lang::ZH, "张三丰"), "张**");
        assert_eq!(mask_phone("13800138000"), "138****8000");
        assert_eq!(mask_phone(""), "—");
    }

    #[test]
    fn phones() {
        assert_eq!(parse_phone("138 0013 8000").as_deref(), Some("13800138000"));
        assert_eq!(
            parse_phone("+8613800138000").as_deref(),
            Some("13800138000")
        );
        assert_eq!(parse_phone("").as_deref(), Some(""));
        assert_eq!(parse_phone("12345"), None);
        assert_eq!(
            parse_phone("１３８ ００１３ ８０００").as_deref(),
            Some("13800138000")
        );
        assert_eq!(parse_phone("2380013800a"), None);
    }
}

#[cfg(test)]
mod message_tests {
    use super::*;
    use store::message::Place;

    /// Every kind of typed message has its title and body in every
    /// language (the keys are built from the kind, so the catalog scan of
    /// crates/web/tests/catalog.rs cannot see them), and names the meter.
    #[test]
    fn every_kind_renders_in_every_language_naming_the_meter() {
        let place = Place {
            building_zh: "中蓝一期A区".to_owned(),
            building_en: "Zhonglan I-A".to_owned(),
            room: "203".to_owned(),
            meter: "201701010042".to_owned(),
        };
        let all = [
            MessageArgs::Delivered {
                place: place.clone(),
                kwh: 20,
                out_trade_no: "DW20261120".to_owned(),
            },
            MessageArgs::LowBalance {
                place: place.clone(),
                remaining_centikwh: 150,
            },
            MessageArgs::BinderAdded {
                place: place.clone(),
            },
            MessageArgs::UnboundByPasswordChange {
                place: place.clone(),
            },
            MessageArgs::PasswordResetByStaff {
                place: place.clone(),
            },
            MessageArgs::PowerCut {
                place: place.clone(),
            },
        ];
        for l in Lang::all() {
            for a in &all {
                let (title, body) = message_texts(l, &MessageContent::Typed(a.clone()));
                for text in [&title, &body] {
                    assert!(
                        !text.contains(crate::i18n::MISSING_MARK),
                        "{}: {text}",
                        l.code()
                    );
                }
                let building = area_name(l, &place.building_zh, &place.building_en);
                for named in [building, "203", "201701010042"] {
                    assert!(body.contains(named), "{}: {body}", l.code());
                }
            }
        }
        let (_, low) = message_texts(Lang::ZH, &MessageContent::Typed(all[1].clone()));
        assert!(low.contains("1.50 kWh"), "{low}");
    }
}
