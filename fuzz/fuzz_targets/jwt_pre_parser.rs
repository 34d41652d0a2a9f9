//! Fuzzes everything the authorizer decides about a JWT before any key
//! lookup (structure, header, algorithm, kid): it must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = authorizer::jwt::pre_parse(s);
    }
});
