//! Machines: Cognito client-credentials access tokens (issue #16 item 2),
//! signed like Cognito signs them, and service tokens.

use serde_json::{Value, json};
use shared::{AuthMethod, PrincipalKind};

use crate::support::*;

const SERVICE_CLIENT: &str = "svcclient0123456789abcdefg";

/// A client-credentials access token as Cognito issues one: `sub` and
/// `client_id` are the app client, no `username`, resource-server scopes.
fn service_claims(scope: &str) -> Value {
    json!({
        "sub": SERVICE_CLIENT,
        "iss": ISSUER,
        "client_id": SERVICE_CLIENT,
        "token_use": "access",
        "scope": scope,
        "iat": T0 - 60,
        "auth_time": T0 - 60,
        "exp": T0 + 3600,
        "jti": "5e9a",
        "version": 2
    })
}

async fn harness(jwks: &JwksServer) -> Harness {
    let mut builder = HarnessBuilder::new(&jwks.url);
    builder.jwt.service_client_ids = vec![SERVICE_CLIENT.into()];
    builder.build().await
}

#[tokio::test]
async fn a_client_credentials_token_is_a_service_with_its_resource_server_scopes() {
    let jwks = JwksServer::start(JWKS).await;
    let h = harness(&jwks).await;
    let token = sign(&service_claims(
        "https://docs.example.com/docs:read https://docs.example.com/docs:write \
         https://docs.example.com/tokens:read https://other.example.com/search:query",
    ));
    let response = h.decide(Some(&bearer(&token))).await.unwrap();
    assert_eq!(response.context.principal_kind, PrincipalKind::Service);
    assert_eq!(response.context.auth_method, AuthMethod::Jwt);
    assert_eq!(response.context.sub, SERVICE_CLIENT);
    assert_eq!(response.context.username, "");
    // docs:write is not among [services] scopes, tokens:read is built in,
    // and search:query names another resource server.
    assert_eq!(response.context.scopes, "docs:read");
    let manifest = shared::testing::manifest();
    let docs_read = manifest
        .scopes()
        .parse_space_separated("docs:read")
        .unwrap();
    assert_eq!(allowed_resources(&response), expected_resources(docs_read));
}

#[tokio::test]
async fn machine_tokens_that_look_like_people_or_people_that_look_like_machines_are_refused() {
    let jwks = JwksServer::start(JWKS).await;
    let h = harness(&jwks).await;
    let good = "https://docs.example.com/docs:read";
    let with = |key: &str, value: Value| {
        let mut claims = service_claims(good);
        claims[key] = value;
        claims
    };
    let cases = [
        ("a username", with("username", json!("alice"))),
        ("groups", with("cognito:groups", json!(["agpat-admins"]))),
        (
            "sub is not the client",
            with("sub", json!("8c1d5a2e-1111-4000-8000-000000000001")),
        ),
        (
            "no scope the manifest allows",
            service_claims("https://docs.example.com/docs:write"),
        ),
        ("no scope at all", service_claims("")),
        ("an id token", with("token_use", json!("id"))),
        (
            "an unknown client",
            with("client_id", json!("someoneelse0123456789abcde")),
        ),
    ];
    for (case, claims) in cases {
        assert_unauthorized(h.decide(Some(&bearer(&sign(&claims)))).await, case);
    }
    // A user client's token without a username (a client-credentials token
    // of a client that is not configured as a service) is never a person.
    let mut user_client_machine = access_claims();
    user_client_machine["sub"] = json!(CLIENT_ID);
    user_client_machine
        .as_object_mut()
        .unwrap()
        .remove("username");
    assert_unauthorized(
        h.decide(Some(&bearer(&sign(&user_client_machine)))).await,
        "a user client's machine token",
    );
    let mut lookalike = access_claims();
    lookalike["sub"] = json!("service:ci-deploy");
    assert_unauthorized(
        h.decide(Some(&bearer(&sign(&lookalike)))).await,
        "a person named like a service",
    );
    let mut no_username = access_claims();
    no_username.as_object_mut().unwrap().remove("username");
    assert_unauthorized(
        h.decide(Some(&bearer(&sign(&no_username)))).await,
        "a user access token without username",
    );
    // Without COGNITO_SERVICE_CLIENT_IDS, the same service token is refused.
    let plain = HarnessBuilder::new(&jwks.url).build().await;
    assert_unauthorized(
        plain
            .decide(Some(&bearer(&sign(&service_claims(good)))))
            .await,
        "service clients not configured",
    );
}

#[tokio::test]
async fn a_service_token_is_bounded_by_the_services_scopes_whatever_it_names() {
    let jwks = JwksServer::start(JWKS).await;
    let h = harness(&jwks).await;
    let manifest = shared::testing::manifest();
    // A planted record naming more than [services] allows (tokens:write,
    // docs:write) yields only what the services may hold.
    let named = manifest
        .scopes()
        .parse_space_separated("tokens:write docs:write docs:read reports:read")
        .unwrap();
    let pat = issue_pat(&h.store, "service:ci-deploy", named, T0 + 600).await;
    let response = h.decide(Some(&bearer(pat.expose()))).await.unwrap();
    assert_eq!(response.context.principal_kind, PrincipalKind::ServiceToken);
    assert_eq!(response.context.sub, "service:ci-deploy");
    assert_eq!(response.context.scopes, "docs:read reports:read");
    // A person's token with the same names keeps the session ceiling.
    let person = issue_pat(&h.store, "user-2", named, T0 + 600).await;
    let response = h.decide(Some(&bearer(person.expose()))).await.unwrap();
    assert_eq!(response.context.principal_kind, PrincipalKind::UserToken);
    assert_eq!(
        response.context.scopes,
        "tokens:write docs:read docs:write reports:read"
    );
}
