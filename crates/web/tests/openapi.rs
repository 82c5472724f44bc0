//! docs/openapi.yaml is true (issue 16 item 7): it is served at
//! `/api/openapi.yaml` as it is in the repository, it parses as YAML, every
//! operation it documents is answered by the running application (no 405,
//! no fallback page), and every `/api` or `/pay` route in the sources is
//! documented. On SQLite (no store behaviour is involved).

mod common;

use common::Server;
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use yaml_rust2::YamlLoader;

const DOC: &str = include_str!("../../../docs/openapi.yaml");

/// (METHOD, path) of every operation the document describes.
fn documented() -> BTreeSet<(String, String)> {
    let docs = YamlLoader::load_from_str(DOC).expect("docs/openapi.yaml is YAML");
    let paths = docs[0]["paths"].as_hash().expect("a paths map");
    let mut out = BTreeSet::new();
    for (path, item) in paths {
        let path = path.as_str().expect("a path key").to_owned();
        for (method, _) in item.as_hash().expect("a path item map") {
            let method = method.as_str().expect("a method key");
            if ["get", "post", "put", "patch", "delete"].contains(&method) {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `const NAME: &str = "…";` items of the sources (a route may name its
/// path by one, e.g. the WeChat notification path).
fn path_consts(srcs: &[String]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for src in srcs {
        for line in src.lines() {
            let line = line.trim_start().trim_start_matches("pub ");
            let Some(rest) = line.strip_prefix("const ") else {
                continue;
            };
            let Some((name, value)) = rest.split_once(": &str = \"") else {
                continue;
            };
            if let Some(value) = value.strip_suffix("\";") {
                out.push((name.to_owned(), value.to_owned()));
            }
        }
    }
    out
}

/// Whether `handlers` calls `method(` (not `forget(` for `get(`).
fn calls(handlers: &str, method: &str) -> bool {
    handlers
        .match_indices(&format!("{method}("))
        .any(|(i, _)| i == 0 || !handlers[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_'))
}

/// (METHOD, path) of every `.route(PATH, get(…).post(…))` in
/// crates/web/src whose path starts with `/api/` or `/pay/`, read from the
/// source text; PATH is a string literal or a `const` of the sources.
fn routed() -> BTreeSet<(String, String)> {
    let mut files = Vec::new();
    sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let srcs: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).expect("read"))
        .collect();
    let consts = path_consts(&srcs);
    let mut out = BTreeSet::new();
    for src in &srcs {
        for chunk in src.split(".route(").skip(1) {
            let chunk = chunk.trim_start();
            let (path, handlers) = if let Some(rest) = chunk.strip_prefix('"') {
                match rest.split_once('"') {
                    Some((p, h)) => (p.to_owned(), h),
                    None => continue,
                }
            } else {
                let Some((name, h)) = chunk.split_once(',') else {
                    continue;
                };
                match consts.iter().find(|(n, _)| n == name.trim()) {
                    Some((_, p)) => (p.clone(), h),
                    None => continue,
                }
            };
            if !(path.starts_with("/api/") || path.starts_with("/pay/")) {
                continue;
            }
            // The handlers end where the next builder call starts.
            let handlers = handlers.split("\n        .").next().unwrap_or(handlers);
            for method in ["get", "post", "put", "patch", "delete"] {
                if calls(handlers, method) {
                    out.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
    }
    out
}

#[test]
fn every_api_route_is_documented_and_every_documented_route_is_routed() {
    let documented = documented();
    let routed = routed();
    assert!(
        routed.len() >= 8,
        "the route scan found too little: {routed:?}"
    );
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from docs/openapi.yaml: {undocumented:?}"
    );
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        unrouted.is_empty(),
        "documented but not routed: {unrouted:?}"
    );
}

#[test]
fn the_route_scan_sees_methods_and_not_lookalikes() {
    assert!(!calls(" forget(a).post(b))", "get"));
    assert!(calls(" forget(a).post(b))", "post"));
    assert!(calls("get(page)", "get"));
    let consts = path_consts(&["pub const NOTIFY: &str = \"/pay/x\";".to_owned()]);
    assert_eq!(consts, [("NOTIFY".to_owned(), "/pay/x".to_owned())]);
}

#[tokio::test]
async fn the_document_is_served_and_each_operation_is_answered() {
    let db = store::testing::sqlite().await.expect("sqlite");
    let settings = web::Settings::new(
        "http://dormwatt.test",
        domain::time::CampusTz::default(),
        false,
    );
    let app = Server::start(db, settings, Vec::new()).await;

    let r = app.get_with(None, "/api/openapi.yaml").await;
    assert_eq!(r.status(), StatusCode::OK);
    let ctype = r.headers()[CONTENT_TYPE].to_str().unwrap().to_owned();
    assert!(ctype.starts_with("application/yaml"), "{ctype}");
    assert_eq!(r.text().await.unwrap(), DOC);

    for (method, path) in documented() {
        // A path parameter gets a value no order has: the route must still
        // be ours (a JSON error or a real answer), not the router's 405 or
        // the pages' fallback.
        let url = format!(
            "{}{}",
            app.base,
            path.replace("{out_trade_no}", "DW0000000000000000000")
        );
        let req = match method.as_str() {
            "GET" => app.http.get(&url),
            "POST" => app
                .http
                .post(&url)
                .body("{}")
                .header(CONTENT_TYPE, "application/json"),
            other => panic!("a method the test does not send: {other}"),
        };
        let r = req.send().await.expect("send");
        let status = r.status();
        let ctype = r
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert!(
            status != StatusCode::NOT_FOUND || ctype.starts_with("application/json"),
            "{method} {path}: {status} {ctype} (the fallback, not the route)"
        );
    }
}
