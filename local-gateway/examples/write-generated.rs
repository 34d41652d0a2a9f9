//! Writes the committed generated files: `docs/openapi.json` (the OpenAPI
//! document), `infra/generated/routes.json` (the route table for the CDK app),
//! and the authorizer context's JSON Schema with a sample context.

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
    std::fs::create_dir_all("docs/examples")?;
    let pretty = |v: serde_json::Value| {
        serde_json::to_string_pretty(&v)
            .map(|s| format!("{s}\n"))
            .map_err(std::io::Error::other)
    };
    std::fs::write(
        shared::principal::CONTEXT_SCHEMA_PATH,
        pretty(shared::principal::context_json_schema())?,
    )?;
    std::fs::write(
        "docs/examples/authorizer-context.json",
        pretty(shared::principal::sample_forwarded_context())?,
    )?;
    println!(
        "wrote {}, infra/generated/routes.json, {} and docs/examples/authorizer-context.json",
        local_gateway::docs::COMMITTED_OPENAPI,
        shared::principal::CONTEXT_SCHEMA_PATH
    );
    Ok(())
}
