//! The page shell (head, top bar, bottom tabs) every page template extends
//! (`templates/base.html`).

use super::assets;
use crate::i18n::Lang;
use crate::session::CurrentStudent;

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

/// One bottom tab as the shell draws it.
pub struct TabLink {
    /// Where it goes.
    pub href: &'static str,
    /// Its icon's name: `home`, `buy`, `records` or `me`, drawn as inline
    /// SVG by `templates/base.html` (text glyphs such as ⚡ turn into colour
    /// emoji on iPhone; issue 11 item 16). A name, not an enum, because the
    /// shell's markup is compiled into every page's module.
    pub icon: &'static str,
    /// Catalog key of its label.
    pub label: &'static str,
    /// Highlighted.
    pub on: bool,
    /// Unread count (0: none).
    pub badge: i64,
}

/// What the shell needs besides the body.
pub struct Shell<'a> {
    /// `<title>` and top-bar heading.
    pub title: String,
    /// The logged-in student, for the tabs and unread badge.
    pub student: Option<&'a CurrentStudent>,
    /// Highlighted tab.
    pub tab: Tab,
    /// This page's path and query, percent-encoded (the language switch
    /// comes back here).
    pub next: String,
    /// Scripts the page loads (our one script, or none).
    pub scripts: Vec<&'static str>,
}

impl<'a> Shell<'a> {
    /// A shell titled with the catalog text `title_key`.
    pub fn new(
        l: Lang,
        title_key: &str,
        student: Option<&'a CurrentStudent>,
        tab: Tab,
        here: &str,
    ) -> Self {
        Shell {
            title: l.t(title_key),
            student,
            tab,
            next: crate::url::encode(here),
            scripts: Vec::new(),
        }
    }

    /// The page also loads the script (`assets/app.js`).
    pub fn with_script(mut self) -> Self {
        self.scripts.push(assets::JS_PATH);
        self
    }

    /// Where the stylesheet is.
    pub fn css_path(&self) -> &'static str {
        assets::CSS_PATH
    }

    /// A demo identity (the banner says so).
    pub fn is_demo(&self) -> bool {
        self.student.is_some_and(|s| s.is_demo)
    }

    /// The session's anti-CSRF token for forms.
    pub fn csrf(&self) -> &str {
        self.student.map_or("", |s| s.csrf_token.as_str())
    }

    /// The bottom tabs.
    pub fn tabs(&self) -> [TabLink; 4] {
        let unread = self.student.map_or(0, |s| s.unread);
        let t = |tab, href, icon, label, badge| TabLink {
            href,
            icon,
            label,
            on: self.tab == tab,
            badge,
        };
        [
            t(Tab::Home, "/", "home", "tab-home", 0),
            t(Tab::Buy, "/buy", "buy", "tab-buy", 0),
            t(Tab::Records, "/records", "records", "tab-records", 0),
            t(Tab::Me, "/me", "me", "tab-me", unread),
        ]
    }
}
