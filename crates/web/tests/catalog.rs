//! The page texts and markup stay where they belong: every catalog key is
//! in every language, every key the pages use exists, and no page source
//! file writes HTML outside the templates.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, ext, out);
        } else if p.extension().is_some_and(|x| x == ext) {
            out.push(p);
        }
    }
}

#[test]
fn every_key_is_in_every_language() {
    // Loading is lazy: a first lookup loads every catalog.
    let _ = web::i18n::Lang::ZH.t("app-name");
    assert!(
        web::i18n::catalog_problems().is_empty(),
        "{:?}",
        web::i18n::catalog_problems()
    );
    let all = web::i18n::catalog_keys();
    assert!(all.len() >= 2, "zh-CN and en at least");
    let (first_tag, first) = &all[0];
    assert_eq!(*first_tag, "zh-CN", "the default language comes first");
    let reference: BTreeSet<&String> = first.iter().collect();
    assert_eq!(reference.len(), first.len(), "{first_tag}: a key twice");
    for (tag, keys) in &all[1..] {
        let these: BTreeSet<&String> = keys.iter().collect();
        assert_eq!(these.len(), keys.len(), "{tag}: a key twice");
        let missing: Vec<_> = reference.difference(&these).collect();
        let extra: Vec<_> = these.difference(&reference).collect();
        assert!(missing.is_empty(), "{tag}.ftl lacks {missing:?}");
        assert!(
            extra.is_empty(),
            "{tag}.ftl has keys zh-CN lacks: {extra:?}"
        );
    }
}

/// Keys named in the pages' code and templates: `t("…")`, `t1("…"`,
/// `t2("…"`, `t_args("…"` and the page titles (`shell("…"`,
/// `Shell::new(l, "…"`) and tab labels.
fn used_keys() -> BTreeSet<String> {
    let mut paths = Vec::new();
    files(&crate_dir().join("src/pages"), "rs", &mut paths);
    files(&crate_dir().join("src/staff"), "rs", &mut paths);
    files(&crate_dir().join("templates"), "html", &mut paths);
    let mut keys = BTreeSet::new();
    for p in paths {
        let src = std::fs::read_to_string(&p).expect("read");
        for opener in [
            ".t(\"",
            ".t1(\"",
            ".t2(\"",
            ".t_args(\"",
            ".shell(\"",
            "refuse(\"",
            "label: \"",
        ] {
            for (i, _) in src.match_indices(opener) {
                let rest = &src[i + opener.len()..];
                if let Some(end) = rest.find('"') {
                    keys.insert(rest[..end].to_owned());
                }
            }
        }
        // `Shell::new(l, "key", …)` (possibly across lines).
        for (i, _) in src.match_indices("Shell::new(") {
            let rest = &src[i..];
            if let Some(q) = rest.find('"') {
                let rest = &rest[q + 1..];
                if let Some(end) = rest.find('"') {
                    keys.insert(rest[..end].to_owned());
                }
            }
        }
        // Tab labels in the shell.
        for (i, _) in src.match_indices("\"tab-") {
            let rest = &src[i + 1..];
            if let Some(end) = rest.find('"') {
                keys.insert(rest[..end].to_owned());
            }
        }
    }
    keys.retain(|k| {
        !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    });
    keys
}

#[test]
fn every_key_the_pages_use_exists() {
    let all = web::i18n::catalog_keys();
    let known: BTreeSet<String> = all[0].1.iter().cloned().collect();
    let used = used_keys();
    assert!(used.len() > 100, "the scan found only {used:?}");
    let missing: Vec<_> = used.difference(&known).collect();
    assert!(
        missing.is_empty(),
        "used but not in the catalog: {missing:?}"
    );
}

/// The string literals of a Rust source, comments and char literals skipped.
fn string_literals(src: &str) -> Vec<(usize, String)> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let line_of = |i: usize| src[..i].matches('\n').count() + 1;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'r' if matches!(b.get(i + 1), Some(b'#' | b'"'))
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) =>
            {
                let mut j = i + 1;
                let mut hashes = 0;
                while b.get(j) == Some(&b'#') {
                    hashes += 1;
                    j += 1;
                }
                if b.get(j) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let close: String = std::iter::once('"')
                    .chain(std::iter::repeat_n('#', hashes))
                    .collect();
                let start = j + 1;
                let end = src[start..].find(&close).map_or(b.len(), |e| start + e);
                out.push((line_of(i), src[start..end].to_owned()));
                i = end + close.len();
            }
            b'"' => {
                let start = i + 1;
                let mut j = start;
                while j < b.len() && b[j] != b'"' {
                    if b[j] == b'\\' {
                        j += 1;
                    }
                    j += 1;
                }
                out.push((line_of(i), src[start..j.min(b.len())].to_owned()));
                i = j + 1;
            }
            b'\'' => {
                // A char literal ('<', '\'') or a lifetime ('a).
                if b.get(i + 1) == Some(&b'\\') {
                    i += 4;
                } else if b.get(i + 2) == Some(&b'\'') {
                    i += 3;
                } else {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    out
}

#[test]
fn no_markup_outside_the_templates() {
    let mut paths = Vec::new();
    files(&crate_dir().join("src/pages"), "rs", &mut paths);
    files(&crate_dir().join("src/staff"), "rs", &mut paths);
    assert!(paths.len() >= 10, "{paths:?}");
    let mut found = Vec::new();
    for p in &paths {
        let src = std::fs::read_to_string(p).expect("read");
        for (line, lit) in string_literals(&src) {
            if lit.contains('<') {
                found.push(format!("{}:{line}: {lit:?}", p.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "markup in page code:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_literal_scanner_sees_strings() {
    let lits = string_literals("let a = \"<b>\"; // \"<c>\"\nlet c = '<'; let r = r#\"<d>\"#;");
    let texts: Vec<&str> = lits.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(texts, ["<b>", "<d>"]);
}
