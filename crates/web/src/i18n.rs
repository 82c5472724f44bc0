//! Page language and the message catalog: Chinese first (zh-CN), English on
//! request (E5).
//!
//! The choice comes from the `dw_lang` cookie (set by the switch link), else
//! from `Accept-Language`, else Chinese.
//!
//! Texts live in one Fluent catalog per language, `crates/web/locales/<tag>.ftl`,
//! embedded at compile time (`build.rs` lists the folder: adding a language
//! is adding one file). Fluent gives plurals (`{ $n -> [one] … *[other] … }`)
//! and named arguments, so word order is the translator's, not the code's.
//! A key missing from a catalog renders as [`MISSING_MARK`]`key`, which the
//! page tests look for; the catalog test checks every key is in every file.

use crate::AppState;
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::LazyLock;

include!(concat!(env!("OUT_DIR"), "/catalogs.rs"));

/// Name of the language cookie.
pub const LANG_COOKIE: &str = "dw_lang";
/// What a page shows in place of a text its catalog lacks (followed by
/// the key), so a test can find it.
pub const MISSING_MARK: &str = "⟦missing:";

/// One language's catalog.
struct Locale {
    /// BCP 47 tag, the file name (`zh-CN`).
    tag: &'static str,
    /// Cookie / query value: the primary subtag (`zh`).
    code: String,
    bundle: FluentBundle<FluentResource>,
}

/// Every catalog, the default first.
struct Catalog {
    locales: Vec<Locale>,
    /// Problems found while loading (parse errors, duplicate keys).
    problems: Vec<String>,
}

static CATALOG: LazyLock<Catalog> = LazyLock::new(|| {
    let mut problems = Vec::new();
    let locales = CATALOGS
        .iter()
        .map(|(tag, src)| {
            let id: unic_langid::LanguageIdentifier = tag.parse().unwrap_or_else(|_| {
                problems.push(format!("{tag}: not a language tag"));
                unic_langid::LanguageIdentifier::default()
            });
            let res = FluentResource::try_new((*src).to_owned()).unwrap_or_else(|(res, errs)| {
                problems.extend(errs.iter().map(|e| format!("{tag}.ftl: {e:?}")));
                res
            });
            let mut bundle = FluentBundle::new_concurrent(vec![id.clone()]);
            // No Unicode isolation marks around arguments: every text here
            // runs left to right, and the marks would break copy and search.
            bundle.set_use_isolating(false);
            if let Err(errs) = bundle.add_resource(res) {
                problems.extend(errs.iter().map(|e| format!("{tag}.ftl: {e:?}")));
            }
            Locale {
                tag,
                code: id.language.as_str().to_owned(),
                bundle,
            }
        })
        .collect();
    for p in &problems {
        tracing::error!(problem = %p, "message catalog");
    }
    Catalog { locales, problems }
});

/// A page language: an index into the catalogs (0, the default, is zh-CN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lang(usize);

/// A message argument (number or text).
#[derive(Debug)]
pub struct Arg(FluentValue<'static>);

macro_rules! number_args {
    ($($t:ty),*) => {$(
        impl From<$t> for Arg {
            fn from(v: $t) -> Self {
                Arg(FluentValue::from(v))
            }
        }
        impl From<&$t> for Arg {
            fn from(v: &$t) -> Self {
                Arg(FluentValue::from(*v))
            }
        }
        impl From<&&$t> for Arg {
            fn from(v: &&$t) -> Self {
                Arg(FluentValue::from(**v))
            }
        }
    )*};
}
number_args!(i64, u32, usize);

impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg(FluentValue::from(v))
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg(FluentValue::from(v.clone()))
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg(FluentValue::from(v.to_owned()))
    }
}
impl From<&&String> for Arg {
    fn from(v: &&String) -> Self {
        Arg(FluentValue::from((*v).clone()))
    }
}
impl From<&&str> for Arg {
    fn from(v: &&str) -> Self {
        Arg(FluentValue::from((*v).to_owned()))
    }
}

impl Lang {
    /// Simplified Chinese, the default.
    pub const ZH: Lang = Lang(0);

    fn locale(self) -> &'static Locale {
        &CATALOG.locales[self.0.min(CATALOG.locales.len() - 1)]
    }

    /// Every language with a catalog, the default first.
    pub fn all() -> impl Iterator<Item = Lang> {
        (0..CATALOG.locales.len()).map(Lang)
    }

    /// The text of `key` in this language.
    pub fn t(self, key: &str) -> String {
        self.format(key, None)
    }

    /// The text of `key` with one argument.
    pub fn t1(self, key: &str, name: &str, v: impl Into<Arg>) -> String {
        let mut a = FluentArgs::new();
        a.set(name.to_owned(), v.into().0);
        self.format(key, Some(&a))
    }

    /// The text of `key` with two arguments.
    pub fn t2(
        self,
        key: &str,
        n1: &str,
        v1: impl Into<Arg>,
        n2: &str,
        v2: impl Into<Arg>,
    ) -> String {
        let mut a = FluentArgs::new();
        a.set(n1.to_owned(), v1.into().0);
        a.set(n2.to_owned(), v2.into().0);
        self.format(key, Some(&a))
    }

    /// The text of `key` with any arguments.
    pub fn t_args(self, key: &str, args: &[(&str, Arg)]) -> String {
        let mut a = FluentArgs::new();
        for (n, v) in args {
            a.set((*n).to_owned(), v.0.clone());
        }
        self.format(key, Some(&a))
    }

    fn format(self, key: &str, args: Option<&FluentArgs<'_>>) -> String {
        let loc = self.locale();
        let Some(pattern) = loc.bundle.get_message(key).and_then(|m| m.value()) else {
            tracing::warn!(key, lang = loc.tag, "message missing from the catalog");
            return format!("{MISSING_MARK}{key}⟧");
        };
        let mut errors = Vec::new();
        let s = loc.bundle.format_pattern(pattern, args, &mut errors);
        if !errors.is_empty() {
            tracing::warn!(key, lang = loc.tag, ?errors, "message did not format");
            return format!("{s}{MISSING_MARK}{key}⟧");
        }
        match s {
            Cow::Borrowed(b) => b.to_owned(),
            Cow::Owned(o) => o,
        }
    }

    /// The BCP 47 tag for `<html lang>`.
    pub fn tag(self) -> &'static str {
        self.locale().tag
    }

    /// The cookie / query value.
    pub fn code(self) -> &'static str {
        &self.locale().code
    }

    /// The language's own name (for the switch link).
    pub fn name(self) -> String {
        self.t("lang-name")
    }

    /// Parses a cookie / query value.
    pub fn parse(s: &str) -> Option<Lang> {
        CATALOG
            .locales
            .iter()
            .position(|l| l.code == s || l.tag == s)
            .map(Lang)
    }

    /// The language an `Accept-Language` header prefers: the first listed
    /// tag that has a catalog wins (q-values are rarely other than
    /// descending in practice, and WeChat sends one tag).
    pub fn from_accept_language(v: &str) -> Lang {
        for tag in v.split(',') {
            let tag = tag
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            let primary = tag.split('-').next().unwrap_or("");
            if let Some(l) = Lang::parse(primary) {
                return l;
            }
        }
        Lang::ZH
    }

    /// The other languages (for the switch links).
    pub fn others(self) -> impl Iterator<Item = Lang> {
        Lang::all().filter(move |l| *l != self)
    }
}

/// Problems found loading the catalogs (for the catalog test).
pub fn catalog_problems() -> &'static [String] {
    &CATALOG.problems
}

/// The message keys of each catalog, `(tag, keys)` (for the catalog test).
pub fn catalog_keys() -> Vec<(&'static str, Vec<String>)> {
    CATALOGS
        .iter()
        .map(|(tag, src)| {
            let res = match FluentResource::try_new((*src).to_owned()) {
                Ok(r) | Err((r, _)) => r,
            };
            let keys = res
                .entries()
                .filter_map(|e| match e {
                    fluent_syntax::ast::Entry::Message(m) => Some(m.id.name.to_owned()),
                    _ => None,
                })
                .collect();
            (*tag, keys)
        })
        .collect()
}

impl FromRequestParts<AppState> for Lang {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Lang::of_request(parts))
    }
}

impl Lang {
    /// The language of a request (cookie, then `Accept-Language`).
    pub fn of_request(parts: &Parts) -> Lang {
        Lang::of_headers(&parts.headers)
    }

    /// The language of request headers (cookie, then `Accept-Language`).
    pub fn of_headers(headers: &axum::http::HeaderMap) -> Lang {
        if let Some(l) = crate::cookies::get(headers, LANG_COOKIE).and_then(Lang::parse) {
            return l;
        }
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .map_or(Lang::ZH, Lang::from_accept_language)
    }
}

#[cfg(test)]
mod tests {
    use super::Lang;

    #[test]
    fn accept_language() {
        let en = Lang::parse("en").expect("an English catalog");
        assert_eq!(Lang::from_accept_language("en-US,en;q=0.9"), en);
        assert_eq!(
            Lang::from_accept_language("zh-CN,zh;q=0.9,en;q=0.8"),
            Lang::ZH
        );
        assert_eq!(Lang::from_accept_language("fr-FR"), Lang::ZH);
        assert_eq!(Lang::from_accept_language("fr,en;q=0.5"), en);
        assert_eq!(Lang::ZH.tag(), "zh-CN");
        assert_eq!(Lang::ZH.code(), "zh");
    }

    #[test]
    fn plurals_and_arguments() {
        let en = Lang::parse("en").expect("en");
        assert_eq!(en.t1("wait-minutes", "n", 1_i64), "1 minute");
        assert_eq!(en.t1("wait-minutes", "n", 3_i64), "3 minutes");
        assert_eq!(Lang::ZH.t1("wait-minutes", "n", 3_i64), "3 分钟");
        assert!(Lang::ZH.t("no-such-key").contains(super::MISSING_MARK));
    }
}
