//! `sqlx::migrate!` embeds migrations/ when the shop compiles; a migration added without a change
//! to the Rust source must rebuild it too, or the binary runs without it.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
