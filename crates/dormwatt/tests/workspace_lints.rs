//! The workspace's lint policy holds in every crate, including crates added
//! later: documentation is required (`missing_docs` in `[workspace.lints]`,
//! which every crate must inherit), and `unwrap`/`expect` are refused
//! outside tests by an attribute at each crate root.

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/dormwatt sits two levels below the workspace")
        .to_path_buf()
}

fn crates() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(workspace().join("crates"))
        .expect("crates/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("Cargo.toml").exists())
        .collect();
    v.sort();
    v
}

#[test]
fn the_workspace_requires_docs() {
    let root = std::fs::read_to_string(workspace().join("Cargo.toml")).expect("Cargo.toml");
    assert!(
        root.lines().any(|l| l.trim() == "missing_docs = \"warn\""),
        "[workspace.lints.rust] must set missing_docs"
    );
}

#[test]
fn every_crate_inherits_the_workspace_lints() {
    for c in crates() {
        let manifest = std::fs::read_to_string(c.join("Cargo.toml")).expect("manifest");
        let inherits = manifest
            .split("[lints]")
            .nth(1)
            .is_some_and(|rest| rest.trim_start().starts_with("workspace = true"));
        assert!(
            inherits,
            "{}: needs `[lints] workspace = true`",
            c.display()
        );
    }
}

#[test]
fn every_crate_refuses_unwrap_and_expect_outside_tests() {
    const ATTR: &str = "#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]";
    for c in crates() {
        let roots: Vec<PathBuf> = ["src/lib.rs", "src/main.rs"]
            .iter()
            .map(|r| c.join(r))
            .filter(|p| p.exists())
            .collect();
        assert!(!roots.is_empty(), "{}: no crate root", c.display());
        for r in roots {
            let text = std::fs::read_to_string(&r).expect("crate root");
            assert!(
                text.lines().any(|l| l.trim() == ATTR),
                "{}: add `{ATTR}` at the crate root",
                r.display()
            );
        }
    }
}
