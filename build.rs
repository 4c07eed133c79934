//! Links the function as a position-dependent executable on Linux: the dynamic loader then has
//! no relocations to apply to the binary at start-up (about 13,000, which also copied some 50
//! pages of vtables on write): about 40 fewer page faults to the first answer, a CPU saving within
//! run-to-run noise on its own (bench/README.md, "Levers").
//! The price is that the binary itself loads at a fixed address (its libraries, heap and stack
//! are still randomized): docs/hardening.md. Only the package's binaries get the flag; its
//! dependencies, build scripts and proc-macros are linked as before.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
