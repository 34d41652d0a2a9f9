//! Fuzzes the PAT parser: it must never panic, and whatever it accepts must
//! round-trip exactly.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(pat) = shared::Pat::parse(s)
    {
        assert_eq!(pat.expose(), s);
    }
});
