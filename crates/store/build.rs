//! Build script of `store`: the embedded migrations must be re-read when a
//! migration file changes.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
