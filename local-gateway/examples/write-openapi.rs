//! Writes the OpenAPI document generated from code to `docs/openapi.json`.

fn main() -> std::io::Result<()> {
    std::fs::create_dir_all("docs")?;
    std::fs::write(
        local_gateway::docs::COMMITTED_OPENAPI,
        local_gateway::docs::openapi_json(),
    )?;
    println!("wrote {}", local_gateway::docs::COMMITTED_OPENAPI);
    Ok(())
}
