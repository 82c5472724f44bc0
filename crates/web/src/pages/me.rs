//! My info (S14): profile, messages inbox, my meters (default, unbind,
//! change a meter's password).

use super::bind::{ClientIp, begin_attempt, fmt_wait, verify_password};
use super::layout::{Shell, Tab, render};
use super::{CsrfField, Esc, PageError, PageResult, campus_tz, fmt_time, kwh, parse_id};
use crate::AppState;
use crate::i18n::Lang;
use crate::session::CurrentStudent;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use std::fmt::Write as _;

/// Messages shown in the inbox.
const MESSAGES_MAX: i64 = 100;
/// Longest name, characters.
const NAME_CHARS_MAX: usize = 20;

fn shell<'a>(l: Lang, title: &'a str, s: &'a CurrentStudent, here: &'a str) -> Shell<'a> {
    Shell {
        lang: l,
        title,
        student: Some(s),
        tab: Tab::Me,
        here,
    }
}

/// `GET /me`.
pub async fn page(
    State(state): State<AppState>,
    lang: Lang,
    student: CurrentStudent,
) -> PageResult {
    let l = lang;
    let s = store::students::by_id(state.db(), student.id)
        .await?
        .ok_or(PageError::NotFound)?;
    let mut b = String::with_capacity(2048);
    let _ = write!(
        b,
        "<div class=card><div class=big style=\"font-size:22px\">{}</div><div class=muted>{}</div></div>\
         <div class=card>\
         <a class=row href=\"/me/profile\"><span>{}</span><span class=muted>›</span></a>\
         <a class=row href=\"/me/messages\" id=link-messages><span>{}</span><span>{}<span class=muted>›</span></span></a>\
         <a class=row href=\"/me/meters\" id=link-meters><span>{}</span><span class=muted>›</span></a>\
         <a class=row href=\"/bind\"><span>{}</span><span class=muted>›</span></a>\
         <a class=row href=\"/bill\"><span>{}</span><span class=muted>›</span></a></div>\
         <form method=post action=\"/logout\">{}<button class=\"btn sec\" type=submit>{}</button></form>",
        Esc(if s.name.is_empty() {
            l.t("未填写姓名", "No name yet")
        } else {
            &s.name
        }),
        Esc(&s.phone),
        l.t("个人资料", "Profile"),
        l.t("消息", "Messages"),
        if student.unread > 0 {
            format!("<b class=badge id=unread>{}</b> ", student.unread)
        } else {
            String::new()
        },
        l.t("我的电表", "My meters"),
        l.t("绑定电表", "Bind a meter"),
        l.t("账单查询", "Bill"),
        CsrfField(&student.csrf_token),
        l.t("退出登录", "Log out"),
    );
    Ok(render(&shell(l, l.t("我的信息", "My info"), &student, "/me"), &b).into_response())
}

/// The profile form.
#[derive(Debug, Deserialize)]
pub struct ProfileForm {
    csrf: String,
    name: String,
    phone: String,
}

/// `GET /me/profile`.
pub async fn profile_page(
    State(state): State<AppState>,
    lang: Lang,
    student: CurrentStudent,
) -> PageResult {
    let s = store::students::by_id(state.db(), student.id)
        .await?
        .ok_or(PageError::NotFound)?;
    profile_form(lang, &student, &s.name, &s.phone, None, false)
}

fn profile_form(
    l: Lang,
    student: &CurrentStudent,
    name: &str,
    phone: &str,
    error: Option<(&str, &str)>,
    saved: bool,
) -> PageResult {
    let msg = |field: &str| match error {
        Some((f, m)) if f == field => format!("<p class=field-msg id={f}-error>{}</p>", Esc(m)),
        _ => String::new(),
    };
    let b = format!(
        "{saved}<form class=card method=post action=\"/me/profile\">{csrf}\
         <label for=name>{nl}</label><input type=text id=name name=name maxlength=40 value=\"{nv}\">{ne}\
         <label for=phone>{pl}</label><input type=tel id=phone name=phone maxlength=20 value=\"{pv}\">{pe}\
         <p class=muted>{note}</p><button class=btn type=submit id=profile-save>{save}</button></form>",
        saved = if saved {
            format!("<div class=warnbox id=profile-saved><span class=ok>✔</span> {}</div>", l.t("已保存。", "Saved."))
        } else {
            String::new()
        },
        csrf = CsrfField(&student.csrf_token),
        nl = l.t("姓名", "Name"),
        nv = Esc(name),
        ne = msg("name"),
        pl = l.t("手机号码", "Mobile phone"),
        pv = Esc(phone),
        pe = msg("phone"),
        note = l.t(
            "手机号码仅用于后勤联系您（例如退款），不会公开。",
            "Your phone number is only for the logistics office to reach you (refunds, say); it is never shown to others."
        ),
        save = l.t("保存", "Save"),
    );
    Ok(render(
        &shell(l, l.t("个人资料", "Profile"), student, "/me/profile"),
        &b,
    )
    .into_response())
}

/// A mainland mobile number: 11 digits starting with 1 (spaces and dashes
/// ignored); empty is allowed (the field is optional).
fn parse_phone(s: &str) -> Option<String> {
    let digits: String = s.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
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
    lang: Lang,
    student: CurrentStudent,
    Form(f): Form<ProfileForm>,
) -> PageResult {
    let l = lang;
    student.check_csrf(&f.csrf)?;
    let name = f.name.trim();
    if name.chars().count() > NAME_CHARS_MAX || name.chars().any(char::is_control) {
        let m = match l {
            Lang::Zh => format!("姓名最多 {NAME_CHARS_MAX} 个字。"),
            Lang::En => format!("At most {NAME_CHARS_MAX} characters."),
        };
        return profile_form(l, &student, &f.name, &f.phone, Some(("name", &m)), false);
    }
    let Some(phone) = parse_phone(&f.phone) else {
        let m = l.t("请输入 11 位手机号码。", "Enter an 11-digit mobile number.");
        return profile_form(l, &student, &f.name, &f.phone, Some(("phone", m)), false);
    };
    store::students::update_profile(state.db(), student.id, name, &phone).await?;
    profile_form(l, &student, name, &phone, None, true)
}

/// `GET /me/messages`.
pub async fn messages_page(
    State(state): State<AppState>,
    lang: Lang,
    student: CurrentStudent,
) -> PageResult {
    let l = lang;
    let tz = campus_tz(&state);
    let msgs = store::students::messages(state.db(), student.id, MESSAGES_MAX).await?;
    let mut b = String::with_capacity(4096);
    if student.unread > 0 {
        let _ = write!(
            b,
            "<form method=post action=\"/me/messages/read\">{}<button class=\"btn sec\" type=submit id=read-all>{}</button></form><br>",
            CsrfField(&student.csrf_token),
            l.t("全部标为已读", "Mark all as read")
        );
    }
    b.push_str("<div class=card id=messages>");
    if msgs.is_empty() {
        let _ = write!(b, "<p class=muted>{}</p>", l.t("暂无消息", "No messages"));
    }
    for m in &msgs {
        let unread = m.read_at_ms.is_none();
        let _ = write!(
            b,
            "<div class=\"row msg{}\" data-message=\"{}\"><div><div class=t>{}</div><div>{}</div><div class=muted>{}</div></div>",
            if unread { " unread" } else { "" },
            m.id,
            Esc(&m.title),
            Esc(&m.body),
            fmt_time(m.created_at_ms, &tz),
        );
        if unread {
            let _ = write!(
                b,
                "<form method=post action=\"/me/messages/{}/read\">{}<button class=\"btn small sec\" type=submit>{}</button></form>",
                m.id,
                CsrfField(&student.csrf_token),
                l.t("已读", "Read")
            );
        }
        b.push_str("</div>");
    }
    b.push_str("</div>");
    Ok(render(
        &shell(l, l.t("消息", "Messages"), &student, "/me/messages"),
        &b,
    )
    .into_response())
}

/// CSRF-only form.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

/// `POST /me/messages/read`.
pub async fn messages_read_all(
    State(state): State<AppState>,
    student: CurrentStudent,
    Form(f): Form<CsrfForm>,
) -> PageResult {
    student.check_csrf(&f.csrf)?;
    store::students::mark_all_read(state.db(), student.id, store::now_ms()).await?;
    Ok(Redirect::to("/me/messages").into_response())
}

/// `POST /me/messages/{id}/read`.
pub async fn message_read(
    State(state): State<AppState>,
    student: CurrentStudent,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> PageResult {
    student.check_csrf(&f.csrf)?;
    let id = parse_id(&id)?;
    store::students::mark_read(state.db(), student.id, id, store::now_ms()).await?;
    Ok(Redirect::to("/me/messages").into_response())
}

/// `GET /me/meters`.
pub async fn meters_page(
    State(state): State<AppState>,
    lang: Lang,
    student: CurrentStudent,
) -> PageResult {
    let l = lang;
    let ms = store::students::bindings(state.db(), student.id).await?;
    let mut b = String::with_capacity(4096);
    if ms.is_empty() {
        let _ = write!(
            b,
            "<div class=card><p class=muted>{}</p></div>",
            l.t("还没有绑定电表。", "No meter bound yet.")
        );
    }
    for m in &ms {
        let _ = write!(
            b,
            "<div class=card data-binding=\"{id}\"><div class=row><span>{place}</span>{def}</div>\
             <div class=row><span>{nol}</span><span>{addr}</span></div>\
             <div class=row><span>{rl}</span><span>{rem} kWh</span></div>{pw}<div class=grid2>",
            id = m.binding_id,
            place = Esc(&super::overview::place(l, m)),
            def = if m.is_default {
                format!(
                    "<span class=\"state completed\">{}</span>",
                    l.t("默认电表", "Default")
                )
            } else {
                String::new()
            },
            nol = l.t("电表编号", "Meter number"),
            addr = Esc(&m.address),
            rl = l.t("表内剩余", "Remaining"),
            rem = m
                .remaining_centikwh
                .map_or_else(|| "—".to_owned(), |r| kwh(r).to_string()),
            pw = if m.password_is_default {
                format!(
                    "<p class=warnbox>{}</p>",
                    l.t(
                        "仍在使用默认密码 000000，请修改。",
                        "Still on the default password 000000: change it."
                    )
                )
            } else {
                String::new()
            },
        );
        // Who else is bound (masked): a binder who knows the password can
        // remove them by changing it (docs/SECURITY.md).
        let others = store::students::co_binders(state.db(), student.id, m.binding_id).await?;
        if !others.is_empty() {
            let tz = campus_tz(&state);
            let _ = write!(
                b,
                "<div class=muted id=co-binders-{}><p>{}</p><ul>",
                m.binding_id,
                l.t(
                    "以下用户也绑定了此电表。如不认识，请修改验证密码，未验证新密码的绑定者将被解除绑定：",
                    "Also bound to this meter. If you do not know them, change the password: everyone who does not prove the new one is unbound:"
                )
            );
            for o in &others {
                let _ = write!(
                    b,
                    "<li>{} · {} · {}</li>",
                    Esc(&mask_name(&o.name)),
                    Esc(&mask_phone(&o.phone)),
                    Esc(&fmt_time(o.created_at_ms, &tz))
                );
            }
            b.push_str("</ul></div>");
        }
        if !m.is_default {
            let _ = write!(
                b,
                "<form method=post action=\"/me/meters/{}/default\">{}<button class=\"btn sec\" type=submit>{}</button></form>",
                m.binding_id,
                CsrfField(&student.csrf_token),
                l.t("设为默认", "Make default")
            );
        }
        let _ = write!(
            b,
            "<a class=\"btn sec\" href=\"/me/meters/{id}/password\">{pw}</a>\
             <form method=post action=\"/me/meters/{id}/unbind\" data-confirm=\"{q}\">{csrf}\
             <button class=\"btn warn\" type=submit>{ub}</button></form></div></div>",
            id = m.binding_id,
            pw = l.t("修改密码", "Change password"),
            q = Esc(l.t("确定解除绑定？", "Unbind this meter?")),
            csrf = CsrfField(&student.csrf_token),
            ub = l.t("解除绑定", "Unbind"),
        );
    }
    let _ = write!(
        b,
        "<a class=btn href=\"/bind\">{}</a><script src=\"{}\"></script>",
        l.t("绑定新电表", "Bind another meter"),
        super::assets::JS_PATH,
    );
    Ok(render(
        &shell(l, l.t("我的电表", "My meters"), &student, "/me/meters"),
        &b,
    )
    .into_response())
}

/// `POST /me/meters/{id}/default`.
pub async fn meter_default(
    State(state): State<AppState>,
    student: CurrentStudent,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> PageResult {
    student.check_csrf(&f.csrf)?;
    let id = parse_id(&id)?;
    store::students::set_default(state.db(), student.id, id).await?;
    Ok(Redirect::to("/me/meters").into_response())
}

/// `POST /me/meters/{id}/unbind`.
pub async fn meter_unbind(
    State(state): State<AppState>,
    student: CurrentStudent,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> PageResult {
    student.check_csrf(&f.csrf)?;
    let id = parse_id(&id)?;
    store::students::unbind(state.db(), student.id, id).await?;
    tracing::info!(student.id = student.id, binding.id = id, "meter unbound");
    Ok(Redirect::to("/me/meters").into_response())
}

/// Query of the password page.
#[derive(Debug, Deserialize)]
pub struct PasswordQuery {
    done: Option<u8>,
}

/// `GET /me/meters/{id}/password`.
pub async fn password_page(
    State(state): State<AppState>,
    lang: Lang,
    student: CurrentStudent,
    Path(id): Path<String>,
    Query(q): Query<PasswordQuery>,
) -> PageResult {
    let id = parse_id(&id)?;
    let m = store::students::binding(state.db(), student.id, id)
        .await?
        .ok_or(PageError::NotFound)?;
    password_form(lang, &student, &m, None, q.done == Some(1))
}

fn password_form(
    l: Lang,
    student: &CurrentStudent,
    m: &store::students::BoundMeter,
    error: Option<&str>,
    done: bool,
) -> PageResult {
    let mut b = String::with_capacity(2048);
    if done {
        let _ = write!(
            b,
            "<div class=warnbox id=password-changed><span class=ok>✔</span> {}</div>",
            l.t("密码已修改。", "Password changed.")
        );
    }
    if let Some(e) = error {
        let _ = write!(b, "<div class=errbox id=password-error>{}</div>", Esc(e));
    }
    let _ = write!(
        b,
        "<form class=card method=post action=\"/me/meters/{id}/password\">{csrf}<p>{place} · {addr}</p>\
         <label for=current>{cl}</label><input type=password id=current name=current inputmode=numeric maxlength=6 required placeholder=\"{cph}\">\
         <label for=new>{nl}</label><input type=password id=new name=new inputmode=numeric maxlength=6 required>\
         <label for=confirm>{rl}</label><input type=password id=confirm name=confirm inputmode=numeric maxlength=6 required>\
         <p class=muted>{note}</p><button class=btn type=submit id=password-save>{save}</button></form>\
         <a class=\"btn sec\" href=\"/\">{later}</a>",
        id = m.binding_id,
        csrf = CsrfField(&student.csrf_token),
        place = Esc(&super::overview::place(l, m)),
        addr = Esc(&m.address),
        cl = l.t("当前密码", "Current password"),
        cph = if m.password_is_default { "000000" } else { "" },
        nl = l.t("新密码（6 位数字）", "New password (6 digits)"),
        rl = l.t("再次输入新密码", "New password again"),
        note = l.t(
            "室友共用电表时，请把新密码告诉室友；新密码不能是 000000。",
            "If roommates share the meter, tell them the new password; it cannot be 000000."
        ),
        save = l.t("修改密码", "Change password"),
        later = l.t("返回首页", "Back to home"),
    );
    let here = format!("/me/meters/{}/password", m.binding_id);
    Ok(render(
        &shell(
            l,
            l.t("修改电表密码", "Change meter password"),
            student,
            &here,
        ),
        &b,
    )
    .into_response())
}

/// The password form.
#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    csrf: String,
    current: String,
    new: String,
    confirm: String,
}

/// `POST /me/meters/{id}/password`: needs the current password; guesses of
/// it are throttled and audited like binding attempts.
pub async fn password_submit(
    State(state): State<AppState>,
    lang: Lang,
    student: CurrentStudent,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    Form(f): Form<PasswordForm>,
) -> PageResult {
    let l = lang;
    student.check_csrf(&f.csrf)?;
    if !student.may_act() {
        return Err(PageError::Snapshot);
    }
    let id = parse_id(&id)?;
    let m = store::students::binding(state.db(), student.id, id)
        .await?
        .ok_or(PageError::NotFound)?;
    if f.new != f.confirm {
        return password_form(
            l,
            &student,
            &m,
            Some(l.t("两次输入的新密码不一致。", "The two new passwords differ.")),
            false,
        );
    }
    if let Err(e) = domain::password::check_format(&f.new) {
        let _ = e;
        return password_form(
            l,
            &student,
            &m,
            Some(l.t(
                "新密码必须是 6 位数字。",
                "The new password must be 6 digits.",
            )),
            false,
        );
    }
    if f.new == domain::password::DEFAULT_PASSWORD {
        return password_form(
            l,
            &student,
            &m,
            Some(l.t(
                "新密码不能是 000000。",
                "The new password cannot be 000000.",
            )),
            false,
        );
    }
    let now = store::now_ms();
    let attempt = match begin_attempt(&state, student.id, &m.address, &ip, true, now).await? {
        Ok(id) => id,
        Err(wait) => {
            let msg = match l {
                Lang::Zh => format!("尝试次数过多，请 {} 后再试。", fmt_wait(l, wait)),
                Lang::En => format!("Too many attempts; try again in {}.", fmt_wait(l, wait)),
            };
            return password_form(l, &student, &m, Some(&msg), false);
        }
    };
    let secret = store::students::bound_meter_secret(state.db(), student.id, id)
        .await?
        .ok_or(PageError::NotFound)?;
    let ok = verify_password(f.current.clone(), Some(secret.password_hash.clone())).await;
    if !ok {
        return password_form(
            l,
            &student,
            &m,
            Some(l.t("当前密码错误。", "The current password is wrong.")),
            false,
        );
    }
    store::students::settle_attempt(state.db(), attempt, true).await?;
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
        &store::students::BindAlert {
            title: "电表验证密码已被修改 / Meter password changed",
            body: "另一位绑定者修改了您所绑定电表的验证密码，您已被解除绑定。如果是室友，请向其索取新密码后重新绑定；\
                   如果不认识对方，请携带证件到后勤服务大厅重置电表密码。\
                   / Another binder changed the verification password of a meter you had bound, and you were unbound. \
                   If it was a roommate, ask for the new password and bind again; otherwise bring your ID to the service hall to have the password reset.",
        },
        now,
    )
    .await?;
    let Some(removed) = removed else {
        return password_form(
            l,
            &student,
            &m,
            Some(l.t(
                "密码刚被他人修改，请重试。",
                "Someone changed it just now; please try again.",
            )),
            false,
        );
    };
    tracing::info!(
        student.id = student.id,
        meter.id = secret.meter_id,
        unbound = removed,
        "meter password changed"
    );
    Ok(Redirect::to(&format!("/me/meters/{id}/password?done=1")).into_response())
}

/// `张三丰` → `张**`; empty → `微信用户`.
fn mask_name(name: &str) -> String {
    let mut cs = name.chars();
    match cs.next() {
        None => "微信用户 WeChat user".to_owned(),
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
        assert_eq!(mask_name("张三丰"), "张**");
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
        assert_eq!(parse_phone("2380013800a"), None);
    }
}
