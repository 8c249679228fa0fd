//! Fuzz target; the checks are in `tests/fuzz_checks/gateway_core.rs`, shared with the
//! corpus replay of `tests/fuzz_corpus.rs`.
#![no_main]

#[path = "../../tests/fuzz_checks/gateway_core.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = check::run(data);
});
