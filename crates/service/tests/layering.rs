//! The layering invariants of docs/ARCHITECTURE.md that a manifest shows:
//! `domain` and `service` know neither SQL nor HTTP — no sqlx, axum,
//! reqwest, hyper or tower among their direct dependencies (the `store`,
//! `pay` and `web` crates hold those).

use std::path::Path;

/// Direct dependencies of the crate whose manifest is `crates/<name>/Cargo.toml`
/// (every `[…dependencies]` table, dev and target-specific ones included).
fn dependencies(name: &str) -> Vec<String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name)
        .join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
    let mut deps = Vec::new();
    let mut in_deps = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line.trim_matches(['[', ']']).ends_with("dependencies");
            continue;
        }
        if in_deps && let Some((key, _)) = line.split_once('=') {
            let key = key.trim();
            if !key.is_empty() && !key.starts_with('#') {
                // `foo.workspace = true` and `foo = { … }` alike.
                deps.push(key.split('.').next().unwrap_or(key).to_owned());
            }
        }
    }
    deps
}

const HTTP_OR_SQL: [&str; 6] = ["sqlx", "axum", "reqwest", "hyper", "hyper-util", "tower"];

#[test]
fn domain_and_service_depend_on_no_sql_or_http_crate() {
    for krate in ["domain", "service"] {
        let deps = dependencies(krate);
        assert!(
            !deps.is_empty() || krate == "domain",
            "{krate}: read nothing"
        );
        for bad in HTTP_OR_SQL {
            assert!(
                !deps.iter().any(|d| d == bad),
                "{krate} depends on {bad}: {deps:?}"
            );
        }
    }
}

#[test]
fn the_check_sees_what_it_must_refuse() {
    // The parser is not vacuous: web and store do hold these crates.
    assert!(dependencies("web").iter().any(|d| d == "axum"));
    assert!(dependencies("store").iter().any(|d| d == "sqlx"));
    assert!(dependencies("service").iter().any(|d| d == "store"));
}

#[test]
fn service_sources_import_no_sql_or_http_crate() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for entry in std::fs::read_dir(&src).expect("src") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        for bad in ["sqlx::", "axum::", "reqwest::", "hyper::"] {
            assert!(!text.contains(bad), "{} names {bad}", path.display());
        }
    }
}
