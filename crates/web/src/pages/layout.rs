//! The page shell (head, top bar, bottom tabs) and HTML escaping.

use super::assets;
use crate::i18n::Lang;
use crate::session::CurrentStudent;
use axum::response::Html;
use std::fmt::{self, Write as _};

/// Escapes text for HTML element content and quoted attribute values.
pub struct Esc<'a>(pub &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        let mut last = 0;
        for (i, b) in s.bytes().enumerate() {
            let rep = match b {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                b'\'' => "&#39;",
                _ => continue,
            };
            f.write_str(&s[last..i])?;
            f.write_str(rep)?;
            last = i + 1;
        }
        f.write_str(&s[last..])
    }
}

/// The bottom tab a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    /// Overview (home).
    Home,
    /// Buy.
    Buy,
    /// Purchase records.
    Records,
    /// My info.
    Me,
    /// No tab (login).
    None,
}

/// What the shell needs besides the body.
pub struct Shell<'a> {
    /// Page language.
    pub lang: Lang,
    /// `<title>` and top-bar heading.
    pub title: &'a str,
    /// The logged-in student, for the tabs and unread badge.
    pub student: Option<&'a CurrentStudent>,
    /// Highlighted tab.
    pub tab: Tab,
    /// This page's path and query (the language switch comes back here).
    pub here: &'a str,
}

/// Wraps a page body in the shell.
pub fn render(shell: &Shell<'_>, body: &str) -> Html<String> {
    let l = shell.lang;
    let mut h = String::with_capacity(body.len() + 2048);
    let _ = write!(
        h,
        "<!doctype html><html lang={tag}><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width,initial-scale=1,viewport-fit=cover\">\
         <meta name=format-detection content=\"telephone=no\">\
         <title>{title} · {app}</title><link rel=stylesheet href=\"{css}\"></head><body>\
         <header class=top><h1>{title}</h1><a class=lang href=\"/lang?to={other}&amp;next={next}\">{other_name}</a></header>\
         <main>",
        tag = l.tag(),
        title = Esc(shell.title),
        app = l.t("公寓购电", "Dorm electricity"),
        css = assets::CSS_PATH,
        other = l.other().code(),
        next = super::url_encode(shell.here),
        other_name = l.t("English", "中文"),
    );
    if shell.student.is_some_and(|s| s.is_demo) {
        let _ = write!(
            h,
            "<p class=demo-banner>{}</p>",
            l.t(
                "演示模式：模拟的学生、电表和支付，不涉及真实资金",
                "Demo mode: simulated students, meters and payments; no real money"
            )
        );
    }
    h.push_str(body);
    h.push_str("</main>");
    if let Some(s) = shell.student {
        let tab = |h: &mut String, t: Tab, href: &str, icon: &str, label: &str, badge: i64| {
            let _ = write!(
                h,
                "<a href=\"{href}\"{cls}><span class=ico>{icon}</span>{label}",
                cls = if t == shell.tab { " class=on" } else { "" },
            );
            if badge > 0 {
                let _ = write!(h, "<b class=badge>{badge}</b>");
            }
            h.push_str("</a>");
        };
        h.push_str("<nav class=tabs>");
        tab(&mut h, Tab::Home, "/", "⌂", l.t("首页", "Home"), 0);
        tab(&mut h, Tab::Buy, "/buy", "⚡", l.t("购电", "Buy"), 0);
        tab(
            &mut h,
            Tab::Records,
            "/records",
            "☰",
            l.t("记录", "Records"),
            0,
        );
        tab(&mut h, Tab::Me, "/me", "☺", l.t("我的", "Me"), s.unread);
        h.push_str("</nav>");
    }
    h.push_str("</body></html>");
    Html(h)
}

#[cfg(test)]
mod tests {
    use super::Esc;

    #[test]
    fn escapes() {
        assert_eq!(
            Esc("<a href=\"x\">&'</a>").to_string(),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(Esc("纯文本").to_string(), "纯文本");
    }
}
