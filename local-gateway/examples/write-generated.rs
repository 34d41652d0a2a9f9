//! Writes the committed generated files: `docs/openapi.json` (the OpenAPI
//! document) and `infra/generated/routes.json` (the route table for the CDK app).

fn main() -> std::io::Result<()> {
    std::fs::create_dir_all("docs")?;
    std::fs::write(
        local_gateway::docs::COMMITTED_OPENAPI,
        local_gateway::docs::openapi_json(),
    )?;
    std::fs::create_dir_all("infra/generated")?;
    std::fs::write(
        "infra/generated/routes.json",
        shared::routes::infra_manifest_json(),
    )?;
    println!(
        "wrote {} and infra/generated/routes.json",
        local_gateway::docs::COMMITTED_OPENAPI
    );
    Ok(())
}
