//! The `agpat` binary; everything is in the library.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    agpat_cli::main().await
}
