//! The files docs/DEPLOY.md ships in contrib/ are what the binary accepts:
//! the example configuration parses (every key known, every value well
//! formed), so on a fresh machine `check-config` reports only the files,
//! keys and database the operator still has to provide; the nginx example
//! forwards the address the way `web.trusted_proxies` reads it.

mod common;

use common::{BIN, text};
use std::path::Path;

fn contrib(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../contrib")
        .join(name)
}

#[test]
fn the_example_configuration_is_accepted_and_only_its_files_are_missing() {
    let out = std::process::Command::new(BIN)
        .arg("--config")
        .arg(contrib("dormwatt.toml"))
        .arg("check-config")
        .env_remove("DORMWATT_DATABASE_URL")
        .output()
        .expect("run dormwatt");
    let t = text(&out);
    assert!(t.contains("configuration in effect"), "{t}");
    assert!(!t.contains("invalid configuration"), "{t}");
    assert!(t.contains("\"trusted_proxies\""), "{t}");
    let problems: Vec<&str> = t.lines().filter(|l| l.starts_with("PROBLEM")).collect();
    assert!(
        !problems.is_empty(),
        "a fresh machine has none of the files: {t}"
    );
    for p in &problems {
        assert!(
            p.contains("cannot read /etc/dormwatt/") || p.contains("database"),
            "a problem that is not a missing file or database: {p}"
        );
    }
}

#[test]
fn the_nginx_example_replaces_the_forwarded_header_and_the_unit_runs_migrate_then_serve() {
    let nginx = std::fs::read_to_string(contrib("nginx-dormwatt.conf")).expect("nginx example");
    assert!(nginx.contains("proxy_set_header X-Forwarded-For $remote_addr;"));
    assert!(nginx.contains("proxy_pass http://127.0.0.1:8080;"));
    // Issue 16 item 1: a scrape through the proxy would come from loopback.
    assert!(nginx.contains("location = /metrics { return 404; }"));
    let unit = std::fs::read_to_string(contrib("dormwatt.service")).expect("unit");
    let pre = unit.find("ExecStartPre=").expect("ExecStartPre");
    let start = unit.find("ExecStart=").expect("ExecStart");
    assert!(
        pre < start
            && unit[pre..].starts_with(
                "ExecStartPre=/usr/local/bin/dormwatt --config /etc/dormwatt/dormwatt.toml migrate"
            )
    );
    assert!(unit.contains("DynamicUser=yes") && unit.contains("ProtectSystem=strict"));
}

/// `systemd-analyze verify` accepts the unit (no errors) (with the binary under test in
/// place of /usr/local/bin/dormwatt); skipped with a notice where systemd's
/// tools are not installed.
#[test]
fn systemd_accepts_the_unit() {
    let Ok(probe) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
    else {
        eprintln!("notice: systemd-analyze is not installed; the unit is not verified");
        return;
    };
    assert!(probe.status.success());
    let unit = std::fs::read_to_string(contrib("dormwatt.service"))
        .expect("unit")
        .replace("/usr/local/bin/dormwatt", BIN);
    let dir = common::temp_dir("unit");
    let path = dir.join("dormwatt.service");
    std::fs::write(&path, unit).expect("write unit");
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze");
    let t = text(&out);
    std::fs::remove_dir_all(&dir).ok();
    // Errors fail verify; what it merely warns about is printed.
    assert!(out.status.success(), "{t}");
    if !t.trim().is_empty() {
        eprintln!("systemd-analyze verify: {t}");
    }
}
