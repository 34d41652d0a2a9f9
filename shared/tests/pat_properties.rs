//! Property tests for the PAT format: at least 10^4 cases per property.

#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] fns"
)]

use std::collections::HashSet;

use proptest::prelude::*;
use shared::pat::{BASE62, PAT_LEN, PAT_PREFIX};
use shared::{Pat, PatParseError};

const CASES: u32 = 10_000;

/// Every single-character edit of `token`: substitutions (with every base62
/// character and a few hostile ones), deletions, insertions and truncations.
fn single_edits(token: &str) -> Vec<String> {
    let bytes = token.as_bytes();
    let mut alphabet: Vec<u8> = BASE62.to_vec();
    alphabet.extend_from_slice(b"_-+/=. \0");
    let mut out = Vec::new();
    for i in 0..bytes.len() {
        for &c in &alphabet {
            if c != bytes[i] {
                let mut v = bytes.to_vec();
                v[i] = c;
                out.push(String::from_utf8(v).unwrap());
            }
        }
        let mut deleted = bytes.to_vec();
        deleted.remove(i);
        out.push(String::from_utf8(deleted).unwrap());
        out.push(String::from_utf8(bytes[..i].to_vec()).unwrap());
    }
    for i in 0..=bytes.len() {
        for &c in BASE62.iter().step_by(7) {
            let mut v = bytes.to_vec();
            v.insert(i, c);
            out.push(String::from_utf8(v).unwrap());
        }
    }
    out
}

#[test]
fn every_single_character_edit_is_rejected() {
    let mut checked = 0usize;
    for _ in 0..4 {
        let pat = Pat::generate().unwrap();
        for edited in single_edits(pat.expose()) {
            assert!(Pat::parse(&edited).is_err(), "accepted an edited token");
            checked += 1;
        }
    }
    assert!(checked >= 10_000, "only {checked} edits checked");
}

#[test]
fn one_hundred_thousand_generated_tokens_are_distinct() {
    let mut ids = HashSet::with_capacity(100_000);
    let mut secrets = HashSet::with_capacity(100_000);
    for _ in 0..100_000 {
        let pat = Pat::generate().unwrap();
        assert!(ids.insert(pat.id().clone()));
        assert!(secrets.insert(pat.secret().expose_bytes().to_vec()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn generate_then_parse_round_trips(_seed in any::<u8>()) {
        let pat = Pat::generate().unwrap();
        let parsed = Pat::parse(pat.expose()).unwrap();
        prop_assert_eq!(parsed.id(), pat.id());
        prop_assert_eq!(parsed.expose(), pat.expose());
        prop_assert_eq!(parsed.secret().expose_bytes(), pat.secret().expose_bytes());
        prop_assert_eq!(pat.expose().len(), PAT_LEN);
    }

    #[test]
    fn arbitrary_strings_never_panic_the_parser(s in any::<String>()) {
        let _ = Pat::parse(&s);
    }

    #[test]
    fn prefixed_junk_of_the_right_length_is_rejected(body in "[0-9A-Za-z]{66}") {
        // A random body passes the checksum with probability 2^-32: treat a pass as a bug.
        let candidate = format!("{PAT_PREFIX}{body}");
        prop_assert_eq!(Pat::parse(&candidate).err(), Some(PatParseError::InvalidChecksum));
    }

    #[test]
    fn arbitrary_bytes_after_the_prefix_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
        let s = format!("{PAT_PREFIX}{}", String::from_utf8_lossy(&bytes));
        let _ = Pat::parse(&s);
    }
}
