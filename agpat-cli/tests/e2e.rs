//! The `agpat` binary end to end, against the local gateway in-process (real
//! token service and authorizer, Cognito and DynamoDB on moto), each test with
//! its own HOME and the file credential store. Run under `scripts/with-moto.sh`.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers"
)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::Json;
use local_gateway::{GatewayConfig, LocalSetup, Upstream, app, build, cognito, serve};
use serde_json::{Value, json};

const PASSWORD: &str = "Correct-horse-9!";
const USER: &str = "cleo";
const BIN: &str = env!("CARGO_BIN_EXE_agpat");

async fn echo(Json(_event): Json<Value>) -> Json<Value> {
    Json(json!({"statusCode": 200, "headers": {}, "body": "{}", "isBase64Encoded": false}))
}

async fn start_upstream() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/2015-03-31/functions/function/invocations",
        listener.local_addr().unwrap()
    );
    let router = axum::Router::new().route(
        "/2015-03-31/functions/function/invocations",
        axum::routing::post(echo),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

/// One run of the binary.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "{self:#?}");
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {self:#?}"))
    }
}

/// A gateway and a user with a private HOME.
struct World {
    base: String,
    pool: cognito::Pool,
    home: tempfile::TempDir,
    /// Everything every run printed, to check no secret leaked.
    printed: Mutex<String>,
}

async fn world() -> World {
    world_with(false).await
}

/// A world whose gateway emulates a DPoP deployment (`dpop` on) when `dpop`:
/// the listener is bound first, as proofs name the gateway's own URL.
async fn world_with(dpop: bool) -> World {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let endpoint = shared::testing::endpoint();
    let store = shared::testing::fresh_store(50).await;
    let pool = cognito::create_pool(&endpoint, "us-east-1", "cli")
        .await
        .unwrap();
    cognito::create_user(&pool, USER, PASSWORD).await.unwrap();
    let setup = LocalSetup {
        manifest: shared::testing::manifest(),
        store,
        upstream: Upstream::lambda_invoke(&start_upstream().await).unwrap(),
        pool: pool.clone(),
        // No caches: a revocation shows at the next call.
        gateway: GatewayConfig {
            cache_ttl_secs: 0,
            dpop,
            dpop_origins: vec![base.clone()],
            ..GatewayConfig::default()
        },
        pat: authorizer::config::PatConfig {
            positive_ttl_secs: 0,
            negative_ttl_secs: 0,
            max_failures_per_source: 5,
        },
        max_lifetime_days: 90,
    };
    let gateway = build(&setup, Arc::new(shared::SystemClock)).unwrap();
    tokio::spawn(serve(listener, app(gateway), std::future::pending()));
    World {
        base,
        pool,
        home: tempfile::tempdir().unwrap(),
        printed: Mutex::new(String::new()),
    }
}

impl World {
    fn credentials_file(&self) -> PathBuf {
        self.home.path().join("config/agpat/credentials.json")
    }

    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join("config"))
            .env("AGPAT_CREDENTIAL_STORE", "file")
            .env("AGPAT_API_URL", &self.base)
            .env("AGPAT_CLIENT_ID", &self.pool.client_id)
            .env("AGPAT_COGNITO_ENDPOINT", &self.pool.endpoint)
            .env("AGPAT_REGION", &self.pool.region);
        for (k, v) in env {
            c.env(k, v);
        }
        c
    }

    /// Runs `agpat args…` with `stdin`; blocking (the gateway runs on other threads).
    async fn run_with(&self, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Out {
        let mut command = self.command(args, env);
        let stdin = stdin.to_owned();
        let out = tokio::task::spawn_blocking(move || {
            let mut child = command
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(stdin.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap();
        let out = Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        };
        let mut printed = self.printed.lock().unwrap();
        printed.push_str(&out.stdout);
        printed.push_str(&out.stderr);
        out
    }

    async fn run(&self, args: &[&str]) -> Out {
        self.run_with(args, "", &[]).await
    }

    async fn login(&self) {
        let out = self
            .run_with(
                &["login", "--username", USER, "--password-stdin"],
                &format!("{PASSWORD}\n"),
                &[],
            )
            .await;
        out.ok();
        assert!(out.stderr.contains("Logged in as cleo"), "{out:#?}");
        assert!(out.stdout.is_empty(), "{out:#?}");
    }

    fn stored(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.credentials_file()).unwrap()).unwrap()
    }

    /// The refresh and access tokens were never printed by any run.
    fn assert_no_session_secret_printed(&self, stored: &Value) {
        let printed = self.printed.lock().unwrap();
        for key in ["refreshToken", "accessToken"] {
            let secret = stored[key].as_str().expect(key);
            assert!(secret.len() > 20, "{key}");
            assert!(!printed.contains(secret), "{key} was printed");
        }
    }

    /// Creates a token in table mode: the secret alone on stdout.
    async fn create(&self, name: &str, scopes: &str) -> (String, String) {
        self.create_with(name, scopes, &[]).await.0
    }

    /// As [`World::create`], with more flags; also what it printed.
    async fn create_with(
        &self,
        name: &str,
        scopes: &str,
        more: &[&str],
    ) -> ((String, String), Out) {
        let mut args = vec![
            "tokens",
            "create",
            "--name",
            name,
            "--scope",
            scopes,
            "--expires-in-days",
            "7",
        ];
        args.extend_from_slice(more);
        let out = self.run(&args).await;
        out.ok();
        let secret = out.stdout.trim_end_matches('\n');
        assert!(secret.starts_with("agpat_"), "{out:#?}");
        assert_eq!(out.stdout.lines().count(), 1, "only the secret: {out:#?}");
        assert!(
            !out.stderr.contains(secret),
            "the secret goes to stdout only"
        );
        let id = out
            .stderr
            .split_whitespace()
            .skip_while(|w| *w != "token")
            .nth(1)
            .unwrap()
            .trim_end_matches('.')
            .to_owned();
        assert!(secret.contains(&id), "{id} {secret}");
        let secret = secret.to_owned();
        ((id, secret), out)
    }

    fn keys_dir(&self) -> PathBuf {
        self.home.path().join("config/agpat/dpop-keys")
    }

    /// The record of a token's kept DPoP key.
    fn key_record(&self, id: &str) -> Value {
        serde_json::from_slice(&std::fs::read(self.keys_dir().join(format!("{id}.json"))).unwrap())
            .unwrap()
    }

    /// No run printed the private key of token `id`, in any usual encoding.
    fn assert_key_never_printed(&self, id: &str) {
        use base64::Engine;
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        let record = self.key_record(id);
        let stored = record
            .get("privateKey")
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned();
        let der = STANDARD.decode(&stored).unwrap();
        // The private scalar (P-256) or seed (Ed25519): PKCS#8's first
        // 32-byte OCTET STRING.
        let at = der.windows(2).position(|w| w == [0x04, 0x20]).unwrap() + 2;
        let d = der.get(at..at + 32).unwrap();
        let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
        let printed = self.printed.lock().unwrap();
        assert!(!printed.is_empty());
        for encoding in [
            stored,
            URL_SAFE_NO_PAD.encode(&der),
            STANDARD.encode(d),
            URL_SAFE_NO_PAD.encode(d),
            hex,
        ] {
            assert!(!printed.contains(&encoding), "the key of {id} was printed");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_manages_tokens_from_login_to_logout() {
    let w = world().await;
    // Not logged in yet: exit 3 with a hint.
    let out = w.run(&["tokens", "list"]).await;
    assert_eq!(out.code, 3, "{out:#?}");
    assert!(out.stderr.contains("agpat login"), "{out:#?}");

    w.login().await;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(w.credentials_file())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the credentials file is private");
    }
    let stored = w.stored();
    assert_eq!(stored["refreshStore"], "file");

    let who = w.run(&["whoami", "-o", "json"]).await;
    assert_eq!(who.ok().json()["username"], USER);
    assert_eq!(who.json()["kind"], "session");

    let (id, secret) = w.create("laptop", "tokens:read").await;
    // The secret is pipeable: it works as a bearer token as printed.
    let shown = w
        .run_with(
            &["tokens", "show", "self", "-o", "json"],
            "",
            &[("AGPAT_TOKEN", &secret)],
        )
        .await;
    assert_eq!(shown.ok().json()["id"], id);

    // JSON mode: the whole answer, secret included, on stdout.
    let created = w
        .run(&[
            "-o",
            "json",
            "tokens",
            "create",
            "--name",
            "ci",
            "--scope",
            "tokens:read,tokens:write",
            "--description",
            "deploys",
        ])
        .await;
    let created = created.ok().json();
    assert!(created["token"].as_str().unwrap().starts_with("agpat_"));
    let ci = created["id"].as_str().unwrap().to_owned();

    let table = w.run(&["tokens", "list"]).await;
    let table = &table.ok().stdout;
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table.contains(&id) && table.contains("laptop") && table.contains("ci"),
        "{table}"
    );
    assert!(
        !table.contains("agpat_"),
        "a listing never shows a secret: {table}"
    );
    let listed = w
        .run(&["tokens", "list", "-o", "json", "--all"])
        .await
        .json();
    assert_eq!(listed["items"].as_array().unwrap().len(), 2, "{listed}");

    let detail = w.run(&["tokens", "show", &id]).await;
    assert!(detail.ok().stdout.contains("tokens:read"), "{detail:#?}");

    // An expired access token is refreshed with the refresh token.
    let mut expired = w.stored();
    expired["accessExpiresAt"] = json!(0);
    std::fs::write(w.credentials_file(), expired.to_string()).unwrap();
    w.run(&["tokens", "show", &ci]).await.ok();
    let refreshed = w.stored();
    assert!(refreshed["accessExpiresAt"].as_i64().unwrap() > 0);
    assert_ne!(refreshed["accessToken"], stored["accessToken"]);

    let revoked = w.run(&["tokens", "revoke", &id]).await;
    assert!(
        revoked.ok().stderr.contains("Revoked token"),
        "{revoked:#?}"
    );
    let gone = w
        .run_with(&["whoami"], "", &[("AGPAT_TOKEN", &secret)])
        .await;
    assert_eq!(gone.code, 3, "a revoked PAT is a 401: {gone:#?}");
    let status = w.run(&["tokens", "show", &id, "-o", "json"]).await.json();
    assert_eq!(status["status"], "revoked");

    w.assert_no_session_secret_printed(&w.stored());
    w.assert_no_session_secret_printed(&stored);

    let out = w.run(&["logout"]).await;
    assert!(out.ok().stderr.contains("Logged out"), "{out:#?}");
    assert!(!w.credentials_file().exists());
    assert_eq!(w.run(&["whoami"]).await.code, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pat_in_agpat_token_is_the_credential_and_whoami_reports_it() {
    let w = world().await;
    w.login().await;
    let (id, secret) = w.create("robot", "tokens:read").await;
    let env = [("AGPAT_TOKEN", secret.as_str())];
    let who = w.run_with(&["whoami", "-o", "json"], "", &env).await;
    let who = who.ok().json();
    assert_eq!(who["kind"], "pat");
    assert_eq!(who["token"]["id"], id);
    let table = w.run_with(&["whoami"], "", &env).await;
    assert!(
        table.ok().stdout.contains("personal access token"),
        "{table:#?}"
    );
    // Beyond its scope: 403, exit 4, shown readably.
    let denied = w
        .run_with(
            &["tokens", "create", "--name", "x", "--scope", "tokens:read"],
            "",
            &env,
        )
        .await;
    assert_eq!(denied.code, 4, "{denied:#?}");
    assert!(denied.stderr.starts_with("error: "), "{denied:#?}");
    assert!(denied.stderr.contains("(403)"), "{denied:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_readable_and_have_the_documented_exit_codes() {
    let w = world().await;
    // Wrong password: 3, and the password is not echoed.
    let out = w
        .run_with(
            &["login", "-u", USER, "--password-stdin"],
            "Wrong-horse-9!\n",
            &[],
        )
        .await;
    assert_eq!(out.code, 3, "{out:#?}");
    assert!(!out.stderr.contains("Wrong-horse"), "{out:#?}");

    w.login().await;
    // Unknown token: 404 → 5.
    let out = w.run(&["tokens", "show", "AAAAAAAAAAAAAAAAA"]).await;
    assert_eq!(out.code, 5, "{out:#?}");
    assert!(
        out.stderr.starts_with("error: ") && out.stderr.contains("(404)"),
        "{out:#?}"
    );
    // Invalid fields: 400 → 7, with the field named.
    let out = w
        .run(&[
            "tokens",
            "create",
            "--name",
            "x",
            "--scope",
            "no:such",
            "--expires-in-days",
            "7",
        ])
        .await;
    assert_eq!(out.code, 7, "{out:#?}");
    assert!(
        out.stderr.contains("(400)") && out.stderr.contains("- scopes:"),
        "{out:#?}"
    );
    // Usage errors: 2.
    assert_eq!(w.run(&["tokens", "create", "--name", "x"]).await.code, 2);
    assert_eq!(
        w.run(&["tokens", "patch", "AAAAAAAAAAAAAAAAA"]).await.code,
        2
    );
    let out = w.run(&["tokens", "revoke-all"]).await;
    assert_eq!(out.code, 2, "no --yes and no terminal: {out:#?}");
    let out = w
        .run_with(&["tokens", "list"], "", &[("AGPAT_API_URL", "")])
        .await;
    // An empty variable falls through to the config file, which login filled.
    out.ok();
    let help = w.run(&["--help"]).await;
    assert!(help.ok().stdout.contains("Exit codes:"), "{help:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_prints_only_the_new_secret_and_revoke_all_clears_everything() {
    let w = world().await;
    w.login().await;
    let (old_id, old_secret) = w.create("rot", "tokens:read").await;
    w.create("other", "tokens:read").await;
    let out = w.run(&["tokens", "rotate", &old_id]).await;
    out.ok();
    let new_secret = out.stdout.trim_end();
    assert_eq!(out.stdout.lines().count(), 1, "{out:#?}");
    assert!(new_secret.starts_with("agpat_") && new_secret != old_secret);
    assert!(!out.stderr.contains(new_secret), "{out:#?}");
    let old = w
        .run(&["tokens", "show", &old_id, "-o", "json"])
        .await
        .json();
    assert!(old["rotatedTo"].is_string(), "{old}");

    let out = w.run(&["tokens", "revoke-all", "--yes"]).await;
    assert!(out.ok().stderr.contains("Revoked 2 token(s)"), "{out:#?}");
    let active = w
        .run(&["tokens", "list", "--status", "active", "-o", "json"])
        .await
        .json();
    assert_eq!(active["items"], json!([]), "{active}");
}

/// A `DELETE /tokens` that runs out of time twice before completing.
async fn slow_revoke_all_server() -> (String, Arc<Mutex<u32>>) {
    let calls = Arc::new(Mutex::new(0u32));
    let seen = Arc::clone(&calls);
    let router = axum::Router::new().route(
        "/tokens",
        axum::routing::delete(move || {
            let seen = Arc::clone(&seen);
            async move {
                let mut n = seen.lock().unwrap();
                *n += 1;
                let complete = *n >= 3;
                Json(json!({"revoked": 40, "remaining": if complete { 0 } else { 120 - 40 * *n }, "complete": complete}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (base, calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_all_calls_again_until_complete_showing_progress() {
    let w = world().await;
    let (base, calls) = slow_revoke_all_server().await;
    let out = w
        .run_with(
            &["tokens", "revoke-all", "--yes"],
            "",
            &[("AGPAT_API_URL", &base), ("AGPAT_TOKEN", "agpat_unused")],
        )
        .await;
    out.ok();
    assert_eq!(*calls.lock().unwrap(), 3);
    let progress: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("revoke-all:"))
        .collect();
    assert_eq!(progress.len(), 2, "{out:#?}");
    assert!(
        progress[0].contains("40 revoked so far, 80 remaining"),
        "{out:#?}"
    );
    assert!(out.stderr.contains("Revoked 120 token(s)."), "{out:#?}");
    assert!(out.stdout.is_empty(), "progress is on stderr: {out:#?}");
}

// ---- Issue #15's new routes: PATCH and events. ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_narrows_a_token_and_refuses_to_widen_it() {
    let w = world().await;
    w.login().await;
    let (id, _) = w.create("wide", "tokens:read,tokens:write").await;
    let out = w
        .run(&[
            "tokens",
            "patch",
            &id,
            "--scope",
            "tokens:read",
            "--name",
            "narrow",
            "--description",
            "read only now",
            "-o",
            "json",
        ])
        .await;
    let view = out.ok().json();
    assert_eq!(view["scopes"], json!(["tokens:read"]), "{view}");
    assert_eq!(view["name"], "narrow");
    assert_eq!(view["description"], "read only now");

    let out = w
        .run(&[
            "tokens",
            "patch",
            &id,
            "--scope",
            "tokens:read,tokens:write",
        ])
        .await;
    assert_eq!(out.code, 7, "widening is refused: {out:#?}");
    assert!(
        out.stderr.contains("(400)") && out.stderr.contains("- scopes:"),
        "{out:#?}"
    );

    let out = w
        .run(&["tokens", "patch", &id, "--clear-description", "-o", "json"])
        .await;
    assert_eq!(out.ok().json()["description"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_show_a_tokens_history_newest_first() {
    let w = world().await;
    w.login().await;
    let (id, _) = w.create("hist", "tokens:read,tokens:write").await;
    w.run(&["tokens", "patch", &id, "--name", "renamed"])
        .await
        .ok();
    w.run(&["tokens", "revoke", &id]).await.ok();
    let page = w.run(&["tokens", "events", &id, "-o", "json"]).await.json();
    let items = page["items"].as_array().unwrap();
    let mut types: Vec<&str> = items.iter().map(|e| e["type"].as_str().unwrap()).collect();
    // Newest first; events within the same second may come in any order.
    let at: Vec<&str> = items.iter().map(|e| e["at"].as_str().unwrap()).collect();
    assert!(at.windows(2).all(|w| w[0] >= w[1]), "{page}");
    types.sort_unstable();
    assert_eq!(types, ["created", "revoked", "updated"], "{page}");
    let table = w.run(&["tokens", "events", &id]).await;
    let table = &table.ok().stdout;
    assert!(
        table.contains("revoked") && table.contains("by=owner"),
        "{table}"
    );
    assert!(table.contains("changes=name"), "{table}");
}

// ---- login --web against a stand-in hosted UI (moto has no /oauth2/*). ----

#[derive(Default)]
struct HostedUi {
    /// code → (challenge, redirect_uri)
    codes: HashMap<String, (String, String)>,
    exchanged: Vec<HashMap<String, String>>,
}

fn fake_jwt(username: &str) -> String {
    use base64::Engine;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.c2ln",
        b64(&json!({"alg": "none"})),
        b64(&json!({"username": username, "sub": "sub-web", "exp": 4_000_000_000i64}))
    )
}

async fn hosted_ui() -> (String, Arc<Mutex<HostedUi>>) {
    let state = Arc::new(Mutex::new(HostedUi::default()));
    let shared = Arc::clone(&state);
    let router = axum::Router::new().route(
        "/oauth2/token",
        axum::routing::post(
            move |axum::extract::Form(form): axum::extract::Form<HashMap<String, String>>| {
                let shared = Arc::clone(&shared);
                async move {
                    let mut ui = shared.lock().unwrap();
                    ui.exchanged.push(form.clone());
                    let expected = ui.codes.get(form.get("code").map_or("", String::as_str)).cloned();
                    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
                    match expected {
                        Some((challenge, redirect))
                            if agpat_cli::pkce::challenge(&verifier) == challenge
                                && form.get("redirect_uri") == Some(&redirect)
                                && form.get("grant_type").map(String::as_str)
                                    == Some("authorization_code") =>
                        {
                            (
                                axum::http::StatusCode::OK,
                                Json(json!({"access_token": fake_jwt("webuser"), "id_token": "x",
                                    "refresh_token": "web-refresh-token-0123456789abcdef", "expires_in": 3600,
                                    "token_type": "Bearer"})),
                            )
                        }
                        _ => (
                            axum::http::StatusCode::BAD_REQUEST,
                            Json(json!({"error": "invalid_grant"})),
                        ),
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (base, state)
}

/// A `login --web --no-browser` in progress, read up to its authorize URL.
struct WebLogin {
    child: std::process::Child,
    /// The authorize URL's query, decoded.
    query: HashMap<String, String>,
    /// The rest of its stderr.
    rest: std::io::Lines<BufReader<std::process::ChildStderr>>,
}

impl WebLogin {
    async fn start(w: &World, ui_base: &str) -> Self {
        let mut child = w
            .command(
                &["login", "--web", "--no-browser", "--timeout-seconds", "30"],
                &[("AGPAT_HOSTED_UI", ui_base)],
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let prefix = format!("{ui_base}/oauth2/authorize?");
        let (url, rest) = tokio::task::spawn_blocking(move || {
            let mut lines = BufReader::new(stderr).lines();
            let url = lines
                .by_ref()
                .map(Result::unwrap)
                .find_map(|l| l.trim().strip_prefix(&prefix).map(str::to_owned))
                .expect("the authorize URL is printed");
            (url, lines)
        })
        .await
        .unwrap();
        let query = url
            .split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                let v = reqwest::Url::parse(&format!("http://x/?v={v}")).unwrap();
                (k.to_owned(), v.query_pairs().next().unwrap().1.into_owned())
            })
            .collect();
        Self { child, query, rest }
    }

    /// The browser (or anyone else) requests the redirect URI with `query`.
    async fn redirect(&self, query: &str) -> u16 {
        reqwest::get(format!(
            "{}?{query}",
            self.query.get("redirect_uri").unwrap()
        ))
        .await
        .unwrap()
        .status()
        .as_u16()
    }

    /// Waits for the exit; its status code and the rest of stderr.
    async fn finish(self) -> (i32, String) {
        let Self {
            mut child, rest, ..
        } = self;
        tokio::task::spawn_blocking(move || {
            let rest: Vec<String> = rest.map(Result::unwrap).collect();
            (child.wait().unwrap().code().unwrap_or(-1), rest.join("\n"))
        })
        .await
        .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_web_exchanges_the_code_with_its_pkce_verifier() {
    let w = world().await;
    let (ui_base, ui) = hosted_ui().await;
    let login = WebLogin::start(&w, &ui_base).await;
    let query = login.query.clone();
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["client_id"], w.pool.client_id);
    let redirect = query["redirect_uri"].clone();
    // Cognito accepts an http callback only for localhost.
    assert!(redirect.starts_with("http://localhost:"), "{redirect}");
    assert!(redirect.ends_with("/callback"), "{redirect}");
    ui.lock().unwrap().codes.insert(
        "code-1".into(),
        (query["code_challenge"].clone(), redirect.clone()),
    );

    // The browser comes back with the code and the state.
    let back = login
        .redirect(&format!("code=code-1&state={}", query["state"]))
        .await;
    assert_eq!(back, 200);
    let (status, rest) = login.finish().await;
    assert_eq!(status, 0, "{rest}");
    assert!(rest.contains("Logged in as webuser"), "{rest}");
    assert!(!rest.contains("web-refresh-token"), "{rest}");
    let exchanged = ui.lock().unwrap().exchanged.clone();
    assert_eq!(exchanged.len(), 1);
    assert_eq!(exchanged[0]["client_id"], w.pool.client_id);
    assert_eq!(exchanged[0]["redirect_uri"], redirect);
    assert_eq!(
        w.stored()["refreshToken"],
        "web-refresh-token-0123456789abcdef"
    );

    let who = w.run(&["whoami", "-o", "json"]).await;
    assert_eq!(who.ok().json()["username"], "webuser");
}

/// An OSC 52 (clipboard write) sequence, percent-encoded for a query.
const OSC52: &str = "%1B%5D52%3Bc%3BZXZpbA%3D%3D%07";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_web_ignores_forged_redirects_and_signs_in_with_the_genuine_one() {
    let w = world().await;
    let (ui_base, ui) = hosted_ui().await;
    let login = WebLogin::start(&w, &ui_base).await;
    let state = login.query["state"].clone();
    ui.lock().unwrap().codes.insert(
        "code-1".into(),
        (
            login.query["code_challenge"].clone(),
            login.query["redirect_uri"].clone(),
        ),
    );
    // Another local process (or a web page that found the port) tries to
    // abort the sign-in, inject escape sequences, or slip in its own code.
    for forged in [
        format!("error=access_denied&error_description={OSC52}"),
        format!("error=access_denied&error_description={OSC52}&state=forged"),
        "code=code-1&state=forged".to_owned(),
        "code=code-1".to_owned(),
    ] {
        assert_eq!(login.redirect(&forged).await, 400, "{forged}");
    }
    assert_eq!(
        login.redirect(&format!("code=code-1&state={state}")).await,
        200
    );
    let (status, rest) = login.finish().await;
    assert_eq!(status, 0, "{rest}");
    assert!(rest.contains("Logged in as webuser"), "{rest}");
    assert!(
        !rest.contains('\u{1b}') && !rest.contains("access_denied"),
        "{rest}"
    );
    assert_eq!(ui.lock().unwrap().exchanged.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_web_stops_on_an_error_redirect_with_the_right_state_showing_it_escaped() {
    let w = world().await;
    let (ui_base, ui) = hosted_ui().await;
    let login = WebLogin::start(&w, &ui_base).await;
    let state = login.query["state"].clone();
    let status = login
        .redirect(&format!(
            "error=access_denied&error_description={OSC52}&state={state}"
        ))
        .await;
    assert_eq!(status, 400);
    let (code, rest) = login.finish().await;
    assert_eq!(code, 3, "{rest}");
    assert!(rest.contains("access_denied"), "{rest}");
    assert!(rest.contains("\\u{1b}]52;c;ZXZpbA==\\u{7}"), "{rest}");
    assert!(
        !rest.chars().any(|c| c.is_control() && c != '\n'),
        "{rest:?}"
    );
    assert!(ui.lock().unwrap().exchanged.is_empty());
    assert!(!w.credentials_file().exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cleartext_url_for_a_remote_host_is_refused_with_exit_code_2() {
    let w = world().await;
    let refused = |out: &Out, what: &str| {
        assert_eq!(out.code, 2, "{what}: {out:#?}");
        assert!(
            out.stderr.contains("https://") && out.stderr.contains("loopback"),
            "{what}: {out:#?}"
        );
    };
    // Refused before any credential is looked at (not logged in would be 3).
    let out = w
        .run_with(
            &["tokens", "list"],
            "",
            &[("AGPAT_API_URL", "http://api.example.com")],
        )
        .await;
    refused(&out, "api_url");
    let out = w
        .run_with(
            &["login", "--web", "--no-browser", "--timeout-seconds", "5"],
            "",
            &[("AGPAT_HOSTED_UI", "http://auth.example.com")],
        )
        .await;
    refused(&out, "hosted_ui");
    assert!(!out.stderr.contains("Open this URL"), "{out:#?}");
    let out = w
        .run_with(
            &["login", "-u", USER, "--password-stdin"],
            &format!("{PASSWORD}\n"),
            &[("AGPAT_COGNITO_ENDPOINT", "http://cognito.example.com")],
        )
        .await;
    refused(&out, "cognito_endpoint");
    let out = w
        .run(&["config", "set", "api_url", "http://api.example.com"])
        .await;
    refused(&out, "config set");
    assert!(!w.credentials_file().exists());
}

/// Review finding: plain http (loopback only) never goes through a proxy
/// from the environment, which could be any host and would see the token
/// in cleartext.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_from_the_environment_never_sees_a_loopback_request() {
    let w = world().await;
    let proxy = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(0u32));
    let counter = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((_conn, _)) = proxy.accept().await {
            *counter.lock().unwrap() += 1;
        }
    });
    // A well-formed token, so that the CLI sends it.
    let token = shared::Pat::generate().unwrap().expose().to_owned();
    let out = w
        .run_with(
            &["whoami"],
            "",
            &[
                ("HTTP_PROXY", proxy_url.as_str()),
                ("http_proxy", proxy_url.as_str()),
                ("ALL_PROXY", proxy_url.as_str()),
                ("AGPAT_TOKEN", token.as_str()),
            ],
        )
        .await;
    // The request went to the gateway itself (which refuses the token).
    assert_ne!(out.code, 0, "{out:#?}");
    assert_eq!(*seen.lock().unwrap(), 0, "the proxy saw a connection");
    assert!(!out.stderr.contains(&token), "{out:#?}");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credentials_file_open_to_others_is_refused_until_chmod_600() {
    use std::os::unix::fs::PermissionsExt;
    let w = world().await;
    w.login().await;
    let file = w.credentials_file();
    let dir = file.parent().unwrap().to_owned();
    let chmod = |p: &std::path::Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    chmod(&file, 0o644);
    let out = w.run(&["tokens", "list"]).await;
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(
        out.stderr
            .contains(&format!("chmod 600 {}", file.display())),
        "{out:#?}"
    );
    // Logout does not silently forget a session whose token may have leaked.
    let out = w.run(&["logout"]).await;
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(file.exists());

    chmod(&file, 0o600);
    // A looser directory is tightened back to 0700 on the next use.
    chmod(&dir, 0o755);
    w.run(&["tokens", "list"]).await.ok();
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    w.assert_no_session_secret_printed(&w.stored());
    w.run(&["logout"]).await.ok();
    assert!(!file.exists());
}

// ---- Issue #18: tokens bound to a DPoP key (RFC 9449). ----

/// Sends a GET with the header lines `agpat dpop headers` printed.
async fn get_with_lines(url: &str, lines: &str) -> u16 {
    let mut request = reqwest::Client::new().get(url);
    for line in lines.lines() {
        let (name, value) = line.split_once(": ").unwrap();
        request = request.header(name, value);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_token_keeps_its_key_private_and_works_only_with_fresh_proofs() {
    let w = world_with(true).await;
    w.login().await;
    let ((id, secret), out) = w
        .create_with("bound", "docs:read,tokens:read", &["--dpop"])
        .await;
    let record = w.key_record(&id);
    assert_eq!(record["alg"], "ES256");
    assert_eq!(record["keyStore"], "file");
    let jkt = record["jkt"].as_str().unwrap().to_owned();
    assert!(
        out.stderr
            .contains(&format!("Bound to DPoP key {jkt} (ES256)")),
        "{out:#?}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&w.keys_dir().join(format!("{id}.json"))), 0o600);
        assert_eq!(mode(&w.keys_dir()), 0o700);
    }
    let shown = w.run(&["tokens", "show", &id, "-o", "json"]).await;
    assert_eq!(shown.ok().json()["dpopJkt"], jkt.as_str());

    let readme = format!("{}/docs/readme", w.base);
    // The token from AGPAT_TOKEN, the key named by --token-id.
    let out = w
        .run_with(
            &["dpop", "request", "--token-id", &id, &readme],
            "",
            &[("AGPAT_TOKEN", &secret)],
        )
        .await;
    assert_eq!(out.ok().stdout, "{}");
    // The token from stdin, the key of the id inside it, a path under the API.
    let out = w
        .run_with(
            &["dpop", "request", "/tokens/self"],
            &format!("{secret}\n"),
            &[],
        )
        .await;
    assert_eq!(out.ok().json()["id"], id.as_str());
    // With AGPAT_TOKEN, the ordinary commands sign with the kept key too.
    let who = w
        .run_with(&["whoami", "-o", "json"], "", &[("AGPAT_TOKEN", &secret)])
        .await;
    assert_eq!(who.ok().json()["token"]["dpopJkt"], jkt.as_str());
    // Not a 2xx: the body is printed, the exit code is the status's.
    let out = w
        .run_with(
            &["dpop", "request", "/billing/invoices"],
            "",
            &[("AGPAT_TOKEN", &secret)],
        )
        .await;
    assert_eq!(out.code, 4, "{out:#?}");
    assert!(out.stderr.contains("(403)"), "{out:#?}");
    assert!(out.stdout.contains("403"), "{out:#?}");

    // As a bearer token it is refused.
    let bearer = reqwest::Client::new()
        .get(&readme)
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 401);

    // `dpop headers`: exactly the two lines; good once, a replay is refused.
    let out = w
        .run_with(
            &[
                "dpop",
                "headers",
                "--token-id",
                &id,
                "--method",
                "GET",
                "--url",
                &readme,
            ],
            &format!("{secret}\n"),
            &[],
        )
        .await;
    let lines = out.ok().stdout.clone();
    let mut each = lines.lines();
    assert_eq!(
        each.next(),
        Some(format!("Authorization: DPoP {secret}").as_str())
    );
    assert!(each.next().unwrap().starts_with("DPoP: ey"), "{lines}");
    assert_eq!(each.next(), None, "{lines}");
    assert_eq!(get_with_lines(&readme, &lines).await, 200);
    assert_eq!(
        get_with_lines(&readme, &lines).await,
        401,
        "a replayed proof"
    );
    // A proof for another method is refused.
    let out = w
        .run_with(
            &["dpop", "headers", "-X", "POST", "--url", &readme],
            "",
            &[("AGPAT_TOKEN", &secret)],
        )
        .await;
    assert_eq!(get_with_lines(&readme, &out.ok().stdout).await, 401);

    // A token whose key is not kept here: exit 3, nothing sent.
    let (open_id, open_secret) = w.create("open", "docs:read").await;
    let out = w
        .run_with(
            &["dpop", "request", &readme],
            "",
            &[("AGPAT_TOKEN", &open_secret)],
        )
        .await;
    assert_eq!(out.code, 3, "{out:#?}");
    assert!(out.stderr.contains(&open_id), "{out:#?}");
    // No token at all, or a token on the command line: usage errors.
    let out = w.run(&["dpop", "headers", "--url", &readme]).await;
    assert_eq!(out.code, 2, "{out:#?}");
    let out = w
        .run(&["dpop", "headers", "--url", &readme, "--token", &secret])
        .await;
    assert_eq!(out.code, 2, "{out:#?}");
    // The token where its id belongs: refused without echoing it (review
    // finding).
    let out = w
        .run_with(
            &["dpop", "headers", "--url", &readme, "--token-id", &secret],
            "",
            &[("AGPAT_TOKEN", secret.as_str())],
        )
        .await;
    assert_eq!(out.code, 2, "{out:#?}");
    assert!(
        !out.stderr.contains(&secret) && !out.stdout.contains(&secret),
        "{out:#?}"
    );

    w.assert_key_never_printed(&id);
    // Revoking the token forgets its key.
    w.run(&["tokens", "revoke", &id]).await.ok();
    assert!(!w.keys_dir().join(format!("{id}.json")).exists());
    // So does a bound token revoking itself (`self`, signed with its key).
    let ((own_id, own_secret), _) = w
        .create_with("self", "docs:read,tokens:write", &["--dpop"])
        .await;
    assert!(w.keys_dir().join(format!("{own_id}.json")).exists());
    w.run_with(
        &["tokens", "revoke", "self"],
        "",
        &[("AGPAT_TOKEN", &own_secret)],
    )
    .await
    .ok();
    assert!(!w.keys_dir().join(format!("{own_id}.json")).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_a_bound_token_keeps_its_key_unless_a_new_one_is_asked_for() {
    let w = world_with(true).await;
    w.login().await;
    let ((first, _), _) = w
        .create_with("rot", "docs:read,tokens:read", &["--dpop", "eddsa"])
        .await;
    let original = w.key_record(&first);
    assert_eq!(original["alg"], "EdDSA");
    let readme = format!("{}/docs/readme", w.base);
    let works = |secret: String| {
        let readme = readme.clone();
        let w = &w;
        async move {
            w.run_with(
                &["dpop", "request", &readme],
                "",
                &[("AGPAT_TOKEN", &secret)],
            )
            .await
            .code
        }
    };

    // The successor stays bound to the same key, which is kept for it too.
    let rotated = w.run(&["-o", "json", "tokens", "rotate", &first]).await;
    let rotated = rotated.ok().json();
    let second = rotated["id"].as_str().unwrap().to_owned();
    assert_eq!(rotated["dpopJkt"], original["jkt"], "{rotated}");
    assert_eq!(rotated["dpopKey"]["alg"], "EdDSA", "{rotated}");
    assert_eq!(rotated["dpopKey"]["keptIn"], "file", "{rotated}");
    assert_eq!(w.key_record(&second)["jkt"], original["jkt"]);
    assert_eq!(w.key_record(&second)["privateKey"], original["privateKey"]);
    assert_eq!(
        works(rotated["token"].as_str().unwrap().to_owned()).await,
        0
    );

    // --dpop-new-key: a new key (same algorithm), and the old one no longer
    // signs for the successor.
    let rotated = w
        .run(&["-o", "json", "tokens", "rotate", &second, "--dpop-new-key"])
        .await;
    let rotated = rotated.ok().json();
    let third = rotated["id"].as_str().unwrap().to_owned();
    let third_secret = rotated["token"].as_str().unwrap().to_owned();
    assert_ne!(rotated["dpopJkt"], original["jkt"], "{rotated}");
    let record = w.key_record(&third);
    assert_eq!(record["jkt"], rotated["dpopJkt"]);
    assert_eq!(record["alg"], "EdDSA");
    let shown = w.run(&["tokens", "show", &third, "-o", "json"]).await;
    assert_eq!(shown.ok().json()["dpopJkt"], record["jkt"]);
    assert_eq!(works(third_secret.clone()).await, 0);
    let out = w
        .run_with(
            &["dpop", "request", "--token-id", &second, &readme],
            "",
            &[("AGPAT_TOKEN", &third_secret)],
        )
        .await;
    assert_eq!(out.code, 3, "the old key is refused: {out:#?}");

    // Table mode: the secret alone on stdout, the binding on stderr.
    let out = w
        .run(&[
            "tokens",
            "rotate",
            &third,
            "--dpop-new-key",
            "--dpop-alg",
            "es256",
        ])
        .await;
    out.ok();
    assert_eq!(out.stdout.lines().count(), 1, "{out:#?}");
    assert!(
        out.stderr.contains("Bound to DPoP key") && out.stderr.contains("(ES256)"),
        "{out:#?}"
    );
    assert_eq!(works(out.stdout.trim_end().to_owned()).await, 0);

    for id in [&first, &second, &third] {
        w.assert_key_never_printed(id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_token_that_cannot_be_issued_or_kept_leaves_nothing_usable_behind() {
    let w = world_with(true).await;
    w.login().await;
    // Issuing fails: no key is kept.
    let out = w
        .run(&[
            "tokens", "create", "--name", "x", "--scope", "no:such", "--dpop",
        ])
        .await;
    assert_eq!(out.code, 7, "{out:#?}");
    assert!(!w.keys_dir().exists());

    // The key cannot be kept (its directory is a file): the token is revoked
    // at once and its secret never shown.
    std::fs::write(w.keys_dir(), "").unwrap();
    let out = w
        .run(&[
            "tokens",
            "create",
            "--name",
            "lost",
            "--scope",
            "docs:read",
            "--dpop",
        ])
        .await;
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(out.stdout.is_empty(), "{out:#?}");
    assert!(out.stderr.contains("was revoked"), "{out:#?}");
    assert!(!out.stderr.contains("agpat_"), "{out:#?}");
    let active = w
        .run(&["tokens", "list", "--status", "active", "-o", "json"])
        .await
        .json();
    assert_eq!(active["items"], json!([]), "{active}");
}
