//! `agpat-manifest check <file>…`: validates manifests at build time with the
//! code the authorizer, the token service and the context crate run at cold
//! start, and prints a one-line summary of each (or the error with its line).
//! Exit status: 0 when every file is valid, 1 otherwise, 2 on bad usage.

use std::path::Path;
use std::process::ExitCode;

use shared::Manifest;

fn summary(m: &Manifest) -> String {
    let routes = m.routes().routes();
    let declared = routes.iter().filter(|r| !r.built_in).count();
    let protected = routes
        .iter()
        .filter(|r| !r.built_in && r.access.is_protected())
        .count();
    format!(
        "{} scopes ({} declared), {declared} routes ({protected} protected) plus {} built in",
        m.scopes().len(),
        m.scopes()
            .len()
            .saturating_sub(shared::scope::BUILT_IN_SCOPES.len()),
        routes.len() - declared
    )
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.split_first() {
        Some((cmd, files)) if cmd == "check" && !files.is_empty() => {
            let mut ok = true;
            for file in files {
                match Manifest::load(Path::new(file)) {
                    Ok(m) => println!("{file}: ok: {}", summary(&m)),
                    Err(e) => {
                        eprintln!("{e}");
                        ok = false;
                    }
                }
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        _ => {
            eprintln!(
                "usage: agpat-manifest check <agpat.toml>… | agpat-manifest policy-sizes <agpat.toml>"
            );
            ExitCode::from(2)
        }
    }
}
