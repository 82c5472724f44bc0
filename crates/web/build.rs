//! Embeds every message catalog under `locales/` (one `<BCP 47 tag>.ftl`
//! per language): adding a language is adding one file. The default
//! language (zh-CN) is listed first.

use std::fmt::Write as _;
use std::path::Path;

const DEFAULT_TAG: &str = "zh-CN";

fn main() {
    // Read at run time, not baked in with env!(): a build script compiled
    // in another checkout (a copied target/ directory) must still embed
    // this checkout's catalogs.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let dir = Path::new(&manifest).join("locales");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut tags: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("crates/web/locales exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "ftl"))
        .filter_map(|p| {
            let tag = p.file_stem()?.to_str()?.to_owned();
            println!("cargo:rerun-if-changed={}", p.display());
            Some((tag, p.display().to_string()))
        })
        .collect();
    tags.sort_by(|a, b| (a.0 != DEFAULT_TAG, &a.0).cmp(&(b.0 != DEFAULT_TAG, &b.0)));
    assert!(
        tags.first().is_some_and(|t| t.0 == DEFAULT_TAG),
        "locales/{DEFAULT_TAG}.ftl (the default language) is missing"
    );
    let mut out = String::from(
        "/// `(BCP 47 tag, Fluent source)` of every catalog, the default first.\n\
         pub(crate) const CATALOGS: &[(&str, &str)] = &[\n",
    );
    for (tag, path) in &tags {
        let _ = writeln!(out, "    ({tag:?}, include_str!({path:?})),");
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("catalogs.rs");
    std::fs::write(dest, out).expect("write catalogs.rs");
}
