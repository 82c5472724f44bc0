//! Page language: Chinese first (zh-CN), English on request (E5).
//!
//! The choice comes from the `dw_lang` cookie (set by the switch link), else
//! from `Accept-Language`, else Chinese. Texts live beside the markup that
//! uses them as `lang.t("中文", "English")` pairs: a page is read and changed
//! in one place, and a missing translation cannot compile.

use crate::AppState;
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use std::convert::Infallible;

/// Name of the language cookie.
pub const LANG_COOKIE: &str = "dw_lang";

/// A page language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    /// Simplified Chinese (the default).
    #[default]
    Zh,
    /// English.
    En,
}

impl Lang {
    /// Picks the text of this language.
    pub fn t<'a>(self, zh: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }

    /// The BCP 47 tag for `<html lang>`.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    /// The cookie / query value.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    /// Parses a cookie / query value.
    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "zh" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The language an `Accept-Language` header prefers: the first listed
    /// of Chinese or English wins (q-values are rarely other than
    /// descending in practice, and WeChat sends one tag).
    pub fn from_accept_language(v: &str) -> Lang {
        for tag in v.split(',') {
            let tag = tag
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if tag.starts_with("zh") {
                return Lang::Zh;
            }
            if tag.starts_with("en") {
                return Lang::En;
            }
        }
        Lang::Zh
    }

    /// The other language (for the switch link).
    pub fn other(self) -> Lang {
        match self {
            Lang::Zh => Lang::En,
            Lang::En => Lang::Zh,
        }
    }
}

impl FromRequestParts<AppState> for Lang {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(l) = crate::session::cookie(&parts.headers, LANG_COOKIE).and_then(Lang::parse) {
            return Ok(l);
        }
        Ok(parts
            .headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .map_or(Lang::Zh, Lang::from_accept_language))
    }
}

#[cfg(test)]
mod tests {
    use super::Lang;

    #[test]
    fn accept_language() {
        assert_eq!(Lang::from_accept_language("en-US,en;q=0.9"), Lang::En);
        assert_eq!(
            Lang::from_accept_language("zh-CN,zh;q=0.9,en;q=0.8"),
            Lang::Zh
        );
        assert_eq!(Lang::from_accept_language("fr-FR"), Lang::Zh);
        assert_eq!(Lang::from_accept_language("fr,en;q=0.5"), Lang::En);
    }
}
