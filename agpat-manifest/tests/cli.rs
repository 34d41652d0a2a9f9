//! The build-time check: the same validation as a cold start, with exit codes.
#![expect(
    clippy::unwrap_used,
    reason = "a test helper: failing loudly is the point"
)]

use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_agpat-manifest"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_fixture_manifest_passes_the_check() {
    let (code, stdout, _) = run(&["check", "testdata/manifests/adopter.toml"]);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("adopter.toml: ok: 15 scopes (12 declared), 47 routes"),
        "{stdout}"
    );
}

#[test]
fn an_invalid_manifest_fails_with_its_line_and_bad_usage_is_told() {
    let dir = std::env::temp_dir().join(format!("agpat-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "version = 1\n[[route]]\nmethod = \"GET\"\npath = \"/x\"\nscope = \"nope\"\n",
    )
    .unwrap();
    let (code, _, stderr) = run(&["check", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("bad.toml:5: unknown scope `nope`"),
        "{stderr}"
    );
    let (code, _, stderr) = run(&["verify"]);
    assert_eq!(code, 2);
    assert!(stderr.starts_with("usage:"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}
