//! The cache-safety matrix over an adopter's manifest.
//!
//! API Gateway caches one policy per credential and applies it to every route
//! of the API. So for every subset of the fixture adopter's 15 scopes, the
//! built-in ones included (32 768 sets) and every request that reaches a protected route, the policy the
//! authorizer builds must allow the request iff the route's access rule
//! permits the scopes. Requests include parameters that spell the manifest's
//! literals (`/docs/x/comments/acl`) and greedy paths of several segments:
//! the cases where an IAM `*` (which spans `/`) over-reaches.
//!
//! Evaluating 32 768 policies against thousands of paths with the IAM matcher
//! directly would take minutes in a debug build, so the test first computes,
//! with that matcher, which resource matches which path, then evaluates each
//! real policy (Allow, then explicit Deny wins) as bit operations on that
//! table. A sample of decisions is cross-checked against the full evaluator.

use authorizer::policy::{MethodArn, build};
use aws_lambda_events::iam::IamPolicyEffect;
use shared::policy::{PolicyDecision, evaluate};
use shared::routes::iam_wildcard_match;

const ARN: &str = "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/GET/docs";

#[test]
fn every_scope_subset_reaches_exactly_its_routes_through_one_cached_policy() {
    let manifest = shared::testing::manifest();
    let table = manifest.routes();
    let arn = MethodArn::parse(ARN).unwrap();
    let prefix = arn.stage_prefix().to_owned();
    assert!(manifest.scopes().len() >= 14);
    let declared = table.routes().iter().filter(|r| !r.built_in).count();
    assert!(declared >= 40, "{declared} routes");

    // Every request that API Gateway would send to a protected route.
    // The bool: a malformed variant (trailing slash or empty segment) that
    // API Gateway would still serve with the route, refused for everyone.
    let mut requests: Vec<(String, usize, bool)> = Vec::new();
    for route in table.routes() {
        for path in shared::testing::sample_paths(table, route) {
            let Some(served) = table.find(route.method, &path) else {
                continue;
            };
            if !served.access.is_protected() {
                continue;
            }
            let index = table.routes().iter().position(|r| r == served).unwrap();
            let method = route.method;
            requests.push((format!("{prefix}{method}{path}"), index, false));
            if path != "/" {
                requests.push((format!("{prefix}{method}{path}/"), index, true));
                requests.push((format!("{prefix}{method}/{path}"), index, true));
            }
        }
    }
    requests.sort();
    requests.dedup();
    assert!(requests.len() > 1000, "{} requests", requests.len());

    // Every resource any policy can name, and which requests each matches.
    let mut resources: Vec<String> = table
        .routes()
        .iter()
        .map(|r| format!("{prefix}{}", r.arn_resource()))
        .collect();
    resources.push(format!("{prefix}*"));
    resources.extend(
        shared::routes::MALFORMED_PATH_DENIES
            .iter()
            .map(|d| format!("{prefix}{d}")),
    );
    resources.sort();
    resources.dedup();
    assert!(resources.len() <= 128);
    let bit = |res: &str| -> u128 {
        let i = resources
            .iter()
            .position(|r| r == res)
            .unwrap_or_else(|| panic!("unexpected resource {res}"));
        1u128 << i
    };
    let matches: Vec<u128> = requests
        .iter()
        .map(|(arn, _, _)| {
            resources
                .iter()
                .enumerate()
                .filter(|(_, r)| iam_wildcard_match(r, arn))
                .fold(0u128, |acc, (i, _)| acc | (1u128 << i))
        })
        .collect();

    let mut checked = 0u64;
    let mut cross_checked = 0u64;
    for (n, scopes) in manifest.scopes().every_subset().unwrap().enumerate() {
        let policy = build(&arn, table, scopes);
        assert!(policy.statement.len() <= 2);
        let (mut allow, mut deny) = (0u128, 0u128);
        for statement in &policy.statement {
            assert_eq!(statement.action, vec!["execute-api:Invoke".to_owned()]);
            let bits = statement.resource.iter().fold(0u128, |acc, r| acc | bit(r));
            match statement.effect {
                IamPolicyEffect::Allow => allow |= bits,
                _ => deny |= bits,
            }
        }
        for (i, (request, route, malformed)) in requests.iter().enumerate() {
            let m = matches.get(i).copied().unwrap_or(0);
            let allowed = m & deny == 0 && m & allow != 0;
            let route = table.routes().get(*route).unwrap();
            assert_eq!(
                allowed,
                !malformed && route.access.permits(scopes),
                "{} for {request} ({}): allow {:?} deny {:?}",
                manifest.scopes().to_space_separated(scopes),
                route.label(),
                policy.statement.first().map(|s| &s.resource),
                policy.statement.get(1).map(|s| &s.resource),
            );
            checked += 1;
            if (n + i) % 997 == 0 {
                let full = evaluate(&policy, request) == PolicyDecision::Allow;
                assert_eq!(full, allowed, "{request}");
                cross_checked += 1;
            }
        }
        // Nothing on another stage, ever.
        if n % 256 == 0 {
            let other = requests.first().unwrap().0.replace("/prod/", "/dev/");
            assert_ne!(evaluate(&policy, &other), PolicyDecision::Allow);
        }
    }
    assert_eq!(
        checked,
        (1u64 << manifest.scopes().len()) * requests.len() as u64
    );
    assert!(cross_checked > 10_000, "{cross_checked}");
}

/// The largest policy of a 500-route manifest: every route allowed. API
/// Gateway takes a REST authorizer's response up to Lambda's 6 MB response
/// limit (the documented 8 KB policy limit is WebSocket APIs'); agpat keeps a
/// far tighter budget of its own, 64 KiB, which this manifest stays under.
#[test]
fn a_500_route_manifest_yields_a_policy_within_the_budget() {
    let text = shared::testing::synthetic_manifest(100);
    let manifest = shared::Manifest::parse(&text, "synthetic").unwrap();
    let declared = manifest
        .routes()
        .routes()
        .iter()
        .filter(|r| !r.built_in)
        .count();
    assert_eq!(declared, 500);
    let arn = MethodArn::parse(ARN).unwrap();
    let all = manifest.scopes().all();
    let policy = build(&arn, manifest.routes(), all);
    let bytes = serde_json::to_vec(&policy).unwrap().len();
    eprintln!("500-route all-scopes policy: {bytes} bytes");
    assert!(bytes < 64 * 1024, "{bytes}");
    // Exact: one Allow per distinct resource, nothing stage-wide; the only
    // Deny entries are the malformed-path ones.
    let allow = &policy.statement.first().unwrap().resource;
    let built_in = shared::routes::built_in_routes()
        .iter()
        .filter(|r| r.access.is_protected())
        .count();
    assert_eq!(built_in, 16, "/tokens and /admin/tokens, public ones aside");
    assert_eq!(allow.len(), 500 + built_in);
    assert!(allow.iter().all(|r| !r.ends_with("/prod/*")));
    let deny = &policy.statement.get(1).unwrap().resource;
    assert_eq!(deny.len(), shared::routes::MALFORMED_PATH_DENIES.len());
    // One scope: its routes only, with Deny entries where wildcards over-reach.
    let one = manifest
        .scopes()
        .parse_space_separated("area3:read")
        .unwrap();
    let policy = build(&arn, manifest.routes(), one);
    let list = ARN.replace("GET/docs", "GET/resource3");
    assert_eq!(evaluate(&policy, &list), PolicyDecision::Allow);
    let other = ARN.replace("GET/docs", "GET/resource4");
    assert_ne!(evaluate(&policy, &other), PolicyDecision::Allow);
}

/// An adopter route beside the administrators' (`/admin/{page}`): its IAM
/// wildcard `GET/admin/*` also matches `/admin/tokens/...`, so a principal
/// holding only the adopter's scope gets an explicit Deny for every admin
/// route, and an administrator's policy allows both.
#[test]
fn an_adopter_route_beside_the_admin_routes_never_lets_its_scope_reach_them() {
    let text = "version = 1\n[sessions.groups]\nagpat-admins = [\"admin:tokens\"]\n\
        [[scope]]\nname = \"pages:read\"\ndescription = \"\"\n\
        [[route]]\nmethod = \"GET\"\npath = \"/admin/{page}\"\nscope = \"pages:read\"\n\
        [[route]]\nmethod = \"DELETE\"\npath = \"/admin/{page}\"\nscope = \"pages:read\"\n";
    let manifest = shared::Manifest::parse(text, "m.toml").unwrap();
    let arn = MethodArn::parse(ARN).unwrap();
    let request = |method: &str, path: &str| ARN.replace("GET/docs", &format!("{method}{path}"));
    let admin_requests = [
        ("GET", "/admin/tokens"),
        ("DELETE", "/admin/tokens"),
        ("GET", "/admin/tokens/0123456789ABCDEFG"),
        ("DELETE", "/admin/tokens/0123456789ABCDEFG"),
        ("GET", "/admin/tokens/0123456789ABCDEFG/events"),
    ];
    let registry = manifest.scopes();
    let pages = registry.parse_space_separated("pages:read").unwrap();
    let everything_but_admin = manifest.sessions().pat_ceiling();
    for scopes in [pages, everything_but_admin] {
        let policy = build(&arn, manifest.routes(), scopes);
        assert_eq!(
            evaluate(&policy, &request("GET", "/admin/overview")),
            PolicyDecision::Allow
        );
        for (method, path) in admin_requests {
            assert_ne!(
                evaluate(&policy, &request(method, path)),
                PolicyDecision::Allow,
                "{method} {path} with {}",
                registry.to_space_separated(scopes)
            );
        }
    }
    let admin = manifest
        .sessions()
        .session_scopes(registry, "id", None, ["agpat-admins"]);
    let policy = build(&arn, manifest.routes(), admin);
    for (method, path) in admin_requests {
        assert_eq!(
            evaluate(&policy, &request(method, path)),
            PolicyDecision::Allow
        );
    }
    assert_eq!(
        evaluate(&policy, &request("GET", "/admin/overview")),
        PolicyDecision::Allow
    );
}
