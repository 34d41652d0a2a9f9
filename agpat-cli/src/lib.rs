//! `agpat`, the command line for agpat's personal access tokens: Cognito
//! sign-in (hosted UI with PKCE, or username and password), then the `/tokens`
//! API. `main.rs` only calls [`main`].
//!
//! Secrets: a token's secret is printed once, on stdout only (`tokens create`,
//! `tokens rotate`); the refresh token, the access token and a bound token's
//! DPoP private key are never printed.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

pub mod api;
pub mod auth;
pub mod config;
pub mod credentials;
pub mod dpop;
pub mod error;
pub mod files;
pub mod output;
pub mod pkce;
pub mod random;
pub mod transport;

use api::Api;
use config::{FileConfig, Paths};
use credentials::{CredentialStore, RefreshStore, Session, StoreChoice};
use error::{CliError, clean};
use output::Format;
use shared::TokenId;

const AFTER_HELP: &str = "\
Settings: a flag, else its environment variable, else the config file
($AGPAT_CONFIG, else $XDG_CONFIG_HOME/agpat/config.toml, else
~/.config/agpat/config.toml; `agpat config set KEY VALUE`).

URLs (api_url, hosted_ui, cognito_endpoint) must be https://; http:// is
accepted only for a loopback host (127.0.0.0/8, [::1] or localhost), else the
command stops with exit code 2.

Credentials: AGPAT_TOKEN=<personal access token> is used when set; otherwise
the session from `agpat login` (refresh token in the OS keyring, else in a
0600 file, refused if group or others can access it; its directory is kept 0700;
AGPAT_CREDENTIAL_STORE=auto|keyring|file).

Bound tokens (DPoP): `tokens create --dpop` keeps the token's private key
in the same store (keyring, else dpop-keys/<id>.json, 0600, next to the
credentials file). With AGPAT_TOKEN set to a bound token, commands sign each
request with it; `agpat dpop headers|request` do so for any URL.";

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "agpat",
    version,
    about = "Personal access tokens for an agpat-protected API",
    after_long_help = long_help()
)]
pub struct Cli {
    /// Base URL of the API.
    #[arg(long, global = true, env = "AGPAT_API_URL")]
    pub api_url: Option<String>,
    /// AWS region of the Cognito user pool.
    #[arg(long, global = true, env = "AGPAT_REGION")]
    pub region: Option<String>,
    /// Cognito app client id (public client).
    #[arg(long, global = true, env = "AGPAT_CLIENT_ID")]
    pub client_id: Option<String>,
    /// Cognito endpoint override (local moto).
    #[arg(long, global = true, env = "AGPAT_COGNITO_ENDPOINT")]
    pub cognito_endpoint: Option<String>,
    /// Hosted UI base URL, for `login --web`.
    #[arg(long, global = true, env = "AGPAT_HOSTED_UI")]
    pub hosted_ui: Option<String>,
    /// Output format.
    #[arg(long, short, global = true, value_enum, env = "AGPAT_OUTPUT", default_value_t = Format::Table)]
    pub output: Format,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

fn long_help() -> String {
    format!("{AFTER_HELP}\n\n{}", error::EXIT_CODES_HELP)
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sign in with Cognito (hosted UI with --web, or username and password).
    Login(LoginArgs),
    /// Forget the session (and revoke its refresh token at Cognito).
    Logout,
    /// Who the current credential is.
    Whoami,
    /// Manage your personal access tokens.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Read or change the config file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Use a bound (DPoP) token: sign requests with the key kept for it.
    #[command(subcommand)]
    Dpop(DpopCommand),
}

/// `agpat login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Sign in in the browser: the hosted UI's authorization code with PKCE.
    #[arg(long, conflicts_with_all = ["username", "password_stdin"])]
    pub web: bool,
    /// Sign in with this username and a password (USER_PASSWORD_AUTH).
    #[arg(long, short)]
    pub username: Option<String>,
    /// Read the password from the first line of stdin (else AGPAT_PASSWORD, else a prompt).
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
    /// With --web: print the URL, do not open a browser.
    #[arg(long)]
    pub no_browser: bool,
    /// With --web: the loopback port of the redirect (0: any; the app client must allow it).
    #[arg(long)]
    pub callback_port: Option<u16>,
    /// With --web: the OAuth scopes to ask for.
    #[arg(long, default_value = "openid")]
    pub oauth_scope: String,
    /// With --web: how long to wait for the browser.
    #[arg(long, default_value_t = 300)]
    pub timeout_seconds: u64,
}

/// `agpat tokens …`.
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Issue a token; prints its secret once, on stdout.
    Create {
        /// A label (1 to 100 characters).
        #[arg(long)]
        name: String,
        /// Scopes (repeat the flag or separate with commas).
        #[arg(long = "scope", short, required = true, value_delimiter = ',')]
        scopes: Vec<String>,
        /// Lifetime in days (default 30).
        #[arg(long, conflicts_with = "expires_at")]
        expires_in_days: Option<i64>,
        /// Expiry, RFC 3339.
        #[arg(long)]
        expires_at: Option<String>,
        /// What the token is for (up to 500 characters).
        #[arg(long)]
        description: Option<String>,
        /// Bind the token to a new key pair (DPoP, RFC 9449), made here and
        /// kept like the session's secrets; the token then works only with
        /// proofs signed by that key (`agpat dpop`). ALG: es256 (default) or eddsa.
        #[arg(long, value_enum, value_name = "ALG", num_args = 0..=1, default_missing_value = "es256")]
        dpop: Option<dpop::Algorithm>,
    },
    /// List your tokens.
    List {
        /// active, expired, revoked or all.
        #[arg(long, value_parser = ["active", "expired", "revoked", "all"])]
        status: Option<String>,
        /// Page size (1 to 100).
        #[arg(long)]
        limit: Option<u32>,
        /// Continue from this cursor.
        #[arg(long, conflicts_with = "all")]
        cursor: Option<String>,
        /// Follow every page.
        #[arg(long)]
        all: bool,
    },
    /// Show one token (`self`: the calling PAT).
    Show {
        /// Token id, or `self`.
        id: String,
    },
    /// A token's history, newest first.
    Events {
        /// Token id.
        id: String,
        /// Page size (1 to 100).
        #[arg(long)]
        limit: Option<u32>,
        /// Continue from this cursor.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Change a token: rename, describe, narrow its scopes, shorten its life.
    Patch {
        /// Token id.
        id: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// New description.
        #[arg(long, conflicts_with = "clear_description")]
        description: Option<String>,
        /// Remove the description.
        #[arg(long)]
        clear_description: bool,
        /// The scopes to keep (a subset of the current ones).
        #[arg(long = "scope", short, value_delimiter = ',')]
        scopes: Vec<String>,
        /// An earlier expiry, RFC 3339.
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// Replace a token with a new one; prints the new secret once, on stdout.
    Rotate {
        /// Token id.
        id: String,
        /// Seconds the old token keeps working (0 to 3600).
        #[arg(long)]
        overlap_seconds: Option<i64>,
        /// Bind the new token to a new key pair instead of the old token's
        /// key (a bound token's successor keeps its key otherwise).
        #[arg(long)]
        dpop_new_key: bool,
        /// The new key's algorithm (default: the old key's, else es256).
        #[arg(long, value_enum, value_name = "ALG", requires = "dpop_new_key")]
        dpop_alg: Option<dpop::Algorithm>,
    },
    /// Revoke one token (`self`: the calling PAT).
    Revoke {
        /// Token id, or `self`.
        id: String,
    },
    /// Revoke every token you own.
    RevokeAll {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

const DPOP_TOKEN_HELP: &str = "\
The token: AGPAT_TOKEN when set, else the first line of stdin (a prompt
without echo on a terminal); never a flag, as command lines end up in shell
history and are visible to other local users. The key: the one kept for
--token-id by `agpat tokens create --dpop` or `tokens rotate` (default: the id
inside the token).";

fn dpop_headers_help() -> String {
    format!(
        "{DPOP_TOKEN_HELP}

A proof is good for one request: this method, this URL (its query is not
part of it), within about a minute, and once. Print new headers for each
request. curl reads them from stdin with -H @- (nothing secret lands on
curl's command line):

  URL=https://api.example.com/prod/docs/readme
  agpat dpop headers --method GET --url \"$URL\" < token.txt | curl -H @- \"$URL\"

(with AGPAT_TOKEN set, drop the redirection). Never pass the headers as -H
arguments: the token would be on curl's command line, which other local
users can see."
    )
}

fn dpop_request_help() -> String {
    format!(
        "{DPOP_TOKEN_HELP}

The answer's body goes to stdout (control characters escaped on a
terminal, as is when piped); a status other than 2xx also ends the command
with the exit code below (401: 3, 403: 4, 404: 5, ...). Redirects are not
followed: a proof names one URL.

  agpat dpop request /docs/readme < token.txt
  AGPAT_TOKEN=$(cat token.txt) agpat dpop request -X POST --data-file doc.json \"$AGPAT_API_URL/docs\"

{}",
        error::EXIT_CODES_HELP
    )
}

/// `agpat dpop …`: requests with a bound token.
#[derive(Debug, Subcommand)]
pub enum DpopCommand {
    /// Print the headers of one request with a bound token:
    /// `Authorization: DPoP <token>` and `DPoP: <a fresh proof>`.
    #[command(after_long_help = dpop_headers_help())]
    Headers {
        /// The token whose kept key signs (default: the id inside the token).
        #[arg(long)]
        token_id: Option<String>,
        /// The request's method.
        #[arg(long, short = 'X', default_value = "GET")]
        method: String,
        /// The request's URL (https://, or http:// to a loopback host).
        #[arg(long)]
        url: String,
    },
    /// Send one request with a bound token and a fresh proof; print the
    /// answer's body.
    #[command(after_long_help = dpop_request_help())]
    Request {
        /// The token whose kept key signs (default: the id inside the token).
        #[arg(long)]
        token_id: Option<String>,
        /// The request's method.
        #[arg(long, short = 'X', default_value = "GET")]
        method: String,
        /// The URL, or a path (`/docs/readme`) under the API URL.
        url: String,
        /// Send this file as the request body.
        #[arg(long)]
        data_file: Option<std::path::PathBuf>,
        /// The body's media type (default: application/json).
        #[arg(long, requires = "data_file")]
        content_type: Option<String>,
    },
}

/// `agpat config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Set a key (api_url, region, client_id, cognito_endpoint, hosted_ui, callback_port).
    Set {
        /// The key.
        key: String,
        /// The value (empty: unset).
        value: String,
    },
    /// Remove a key.
    Unset {
        /// The key.
        key: String,
    },
    /// Show the file's settings and where it is.
    Show,
}

/// Parses the command line, runs it, prints any error, and returns the
/// documented exit code.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", e.render());
            ExitCode::from(e.exit_code())
        }
    }
}

/// Settings after flags, environment and the config file are merged.
#[derive(Debug, Clone)]
struct Settings {
    api_url: Option<String>,
    region: String,
    client_id: Option<String>,
    cognito_endpoint: Option<String>,
    hosted_ui: Option<String>,
    callback_port: Option<u16>,
}

impl Settings {
    fn merge(cli: &Cli, file: &FileConfig) -> Self {
        let pick = |a: &Option<String>, b: &Option<String>| {
            a.clone()
                .filter(|v| !v.is_empty())
                .or_else(|| b.clone())
                .filter(|v| !v.is_empty())
        };
        Self {
            api_url: pick(&cli.api_url, &file.api_url),
            region: pick(&cli.region, &file.region)
                .unwrap_or_else(|| config::DEFAULT_REGION.to_owned()),
            client_id: pick(&cli.client_id, &file.client_id),
            cognito_endpoint: pick(&cli.cognito_endpoint, &file.cognito_endpoint),
            hosted_ui: pick(&cli.hosted_ui, &file.hosted_ui),
            callback_port: file.callback_port,
        }
    }

    fn api_url(&self) -> Result<&str, CliError> {
        self.api_url.as_deref().ok_or_else(|| {
            CliError::Usage(
                "no API URL: pass --api-url, set AGPAT_API_URL, or `agpat config set api_url URL`"
                    .into(),
            )
        })
    }

    fn client_id(&self) -> Result<&str, CliError> {
        self.client_id.as_deref().ok_or_else(|| {
            CliError::Usage(
                "no Cognito app client id: pass --client-id, set AGPAT_CLIENT_ID, \
                 or `agpat config set client_id ID`"
                    .into(),
            )
        })
    }
}

struct Context {
    format: Format,
    settings: Settings,
    paths: Paths,
    store: CredentialStore,
    keys: dpop::KeyStore,
}

/// Runs one parsed command.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let paths = Paths::from_env()?;
    let file = FileConfig::load(&paths.config_file)?;
    let settings = Settings::merge(&cli, &file);
    let choice = StoreChoice::from_env()?;
    let store = CredentialStore::new(paths.credentials_file(), choice);
    let keys = dpop::KeyStore::new(dpop::keys_dir(&paths.dir), choice);
    let ctx = Context {
        format: cli.output,
        settings,
        paths,
        store,
        keys,
    };
    match cli.command {
        Command::Login(args) => login(&ctx, args, file).await,
        Command::Logout => logout(&ctx).await,
        Command::Whoami => whoami(&ctx).await,
        Command::Tokens(command) => tokens(&ctx, command).await,
        Command::Config(command) => config_command(&ctx, command, file),
        Command::Dpop(command) => dpop_command(&ctx, command).await,
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn stdout_line(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(|e| CliError::Other(anyhow::anyhow!("cannot write to stdout: {e}")))
}

async fn login(ctx: &Context, args: LoginArgs, mut file: FileConfig) -> Result<(), CliError> {
    let client_id = ctx.settings.client_id()?.to_owned();
    let web = args.web || (args.username.is_none() && ctx.settings.hosted_ui.is_some());
    let (username, tokens) = if web {
        web_login(ctx, &args, &client_id).await?
    } else {
        let username = args.username.clone().ok_or_else(|| {
            CliError::Usage(
                "give --username (password sign-in), or --web with a hosted_ui setting".into(),
            )
        })?;
        let password = read_password(args.password_stdin)?;
        let target = auth::CognitoTarget {
            client_id: client_id.clone(),
            region: ctx.settings.region.clone(),
            endpoint: ctx.settings.cognito_endpoint.clone(),
        };
        let tokens = auth::password_login(&target, &username, &password).await?;
        (username, tokens)
    };
    let session = Session {
        username: username.clone(),
        client_id: client_id.clone(),
        region: ctx.settings.region.clone(),
        cognito_endpoint: ctx.settings.cognito_endpoint.clone(),
        access_token: tokens.access_token,
        access_expires_at: now() + tokens.expires_in,
        refresh_token: tokens.refresh_token,
    };
    let kept = ctx.store.save(&session)?;
    // Later commands need no flags: the settings this login used are saved.
    file.api_url = ctx.settings.api_url.clone().or(file.api_url);
    file.region = Some(ctx.settings.region.clone());
    file.client_id = Some(client_id);
    file.cognito_endpoint = ctx
        .settings
        .cognito_endpoint
        .clone()
        .or(file.cognito_endpoint);
    file.hosted_ui = ctx.settings.hosted_ui.clone().or(file.hosted_ui);
    file.save(&ctx.paths.config_file)?;
    let where_kept = match kept {
        Some(RefreshStore::Keyring) => "the OS keyring".to_owned(),
        Some(RefreshStore::File) => ctx.store.file().display().to_string(),
        None => "nowhere (Cognito returned none)".to_owned(),
    };
    eprintln!(
        "Logged in as {}. Refresh token kept in {where_kept}.",
        clean(&username)
    );
    Ok(())
}

fn read_password(from_stdin: bool) -> Result<SecretString, CliError> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| CliError::Other(anyhow::anyhow!("cannot read stdin: {e}")))?;
        let password = line.trim_end_matches(['\r', '\n']).to_owned();
        if password.is_empty() {
            return Err(CliError::Usage(
                "--password-stdin read an empty line".into(),
            ));
        }
        return Ok(SecretString::from(password));
    }
    if let Ok(p) = std::env::var("AGPAT_PASSWORD")
        && !p.is_empty()
    {
        return Ok(SecretString::from(p));
    }
    rpassword::prompt_password("Password: ")
        .map(SecretString::from)
        .map_err(|e| {
            CliError::Usage(format!(
                "cannot prompt for the password ({e}): use --password-stdin or AGPAT_PASSWORD"
            ))
        })
}

async fn web_login(
    ctx: &Context,
    args: &LoginArgs,
    client_id: &str,
) -> Result<(String, auth::Tokens), CliError> {
    let hosted_ui = ctx.settings.hosted_ui.clone().ok_or_else(|| {
        CliError::Usage(
            "--web needs the hosted UI: pass --hosted-ui, set AGPAT_HOSTED_UI, \
             or `agpat config set hosted_ui URL`"
                .into(),
        )
    })?;
    let port = args
        .callback_port
        .or(ctx.settings.callback_port)
        .unwrap_or(0);
    let pkce = pkce::Pkce::new().map_err(|e| CliError::Other(e.into()))?;
    let listener = pkce::CallbackListener::bind(port)
        .await
        .map_err(|e| CliError::Other(anyhow::anyhow!("cannot listen on 127.0.0.1:{port}: {e}")))?;
    let redirect_uri = listener.redirect_uri().to_owned();
    let url = pkce.authorize_url(&hosted_ui, client_id, &redirect_uri, &args.oauth_scope)?;
    eprintln!("Open this URL to sign in (it expects a redirect to {redirect_uri}):\n  {url}");
    if !args.no_browser && !pkce::open_browser(&url) {
        eprintln!("(could not open a browser: open the URL yourself)");
    }
    let code = listener
        .wait(&pkce.state, Duration::from_secs(args.timeout_seconds))
        .await?;
    let http = transport::client()?;
    let tokens = pkce::exchange(
        &http,
        &hosted_ui,
        client_id,
        &redirect_uri,
        &code,
        &pkce.verifier,
    )
    .await?;
    let username = auth::claims(tokens.access_token.expose_secret())
        .and_then(|c| c.username.or(c.sub))
        .unwrap_or_else(|| "(unknown)".to_owned());
    Ok((username, tokens))
}

async fn logout(ctx: &Context) -> Result<(), CliError> {
    match ctx.store.load() {
        Ok(Some(session)) => {
            if let Err(e) = auth::revoke(&session).await {
                eprintln!(
                    "warning: Cognito did not revoke the refresh token ({e}); forgetting it anyway"
                );
            }
        }
        // Malformed: nothing to revoke; forgotten below, as its message says.
        Ok(None) | Err(CliError::NotLoggedIn(_)) => {}
        // Untrusted (open to others, another owner) or unreadable: its refresh
        // token should be revoked, not silently forgotten. The error says how
        // to fix the file; logout then works.
        Err(e) => return Err(e),
    }
    if ctx.store.delete()? {
        eprintln!("Logged out.");
    } else {
        eprintln!("Not logged in.");
    }
    Ok(())
}

/// The credential for API calls: `AGPAT_TOKEN`, else the session (refreshed
/// when its access token has less than a minute left).
enum Credential {
    Pat(SecretString),
    Session(Session),
}

async fn credential(ctx: &Context) -> Result<Credential, CliError> {
    if let Ok(pat) = std::env::var("AGPAT_TOKEN")
        && !pat.trim().is_empty()
    {
        return Ok(Credential::Pat(SecretString::from(pat.trim().to_owned())));
    }
    let mut session = ctx.store.load()?.ok_or_else(|| {
        CliError::NotLoggedIn("not logged in: run `agpat login`, or set AGPAT_TOKEN".into())
    })?;
    if session.access_expires_at - 60 <= now() {
        let fresh = auth::refresh(&session).await?;
        session.access_token = fresh.access_token;
        session.access_expires_at = now() + fresh.expires_in;
        if fresh.refresh_token.is_some() {
            session.refresh_token = fresh.refresh_token;
        }
        ctx.store.save(&session)?;
    }
    Ok(Credential::Session(session))
}

async fn api(ctx: &Context) -> Result<Api, CliError> {
    let base = ctx.settings.api_url()?.to_owned();
    // A cleartext URL is refused before any credential is loaded or refreshed.
    transport::parse("the API URL", &base)?;
    match credential(ctx).await? {
        Credential::Pat(pat) => pat_api(ctx, &base, pat),
        Credential::Session(s) => Api::new(&base, s.access_token),
    }
}

/// A client for a PAT: one bound to a key kept here signs every request
/// with a proof, any other is sent as `Bearer`.
fn pat_api(ctx: &Context, base: &str, pat: SecretString) -> Result<Api, CliError> {
    let key = match shared::Pat::parse(pat.expose_secret()) {
        Ok(parsed) => ctx.keys.load(parsed.id())?,
        Err(_) => None,
    };
    let api = Api::new(base, pat)?;
    Ok(match key {
        Some(key) => api.with_proof_key(key),
        None => api,
    })
}

async fn whoami(ctx: &Context) -> Result<(), CliError> {
    match credential(ctx).await? {
        Credential::Pat(pat) => {
            let api = pat_api(ctx, ctx.settings.api_url()?, pat)?;
            let view = api
                .json(Method::GET, &["tokens", "self"], &[], None)
                .await?;
            match ctx.format {
                Format::Json => stdout_line(&output::json(&json!({"kind": "pat", "token": view}))),
                Format::Table => stdout_line(&format!(
                    "personal access token (AGPAT_TOKEN)\n{}",
                    output::token_detail(&view)
                )),
            }
        }
        Credential::Session(session) => {
            let claims = auth::claims(session.access_token.expose_secret()).unwrap_or_default();
            let expires = time::OffsetDateTime::from_unix_timestamp(session.access_expires_at)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_default();
            let view = json!({
                "kind": "session",
                "username": claims.username.clone().unwrap_or(session.username.clone()),
                "sub": claims.sub,
                "clientId": session.client_id,
                "issuer": claims.iss,
                "groups": claims.groups.unwrap_or_default(),
                "accessTokenExpiresAt": expires,
            });
            match ctx.format {
                Format::Json => stdout_line(&output::json(&view)),
                Format::Table => stdout_line(&format!(
                    "Cognito session\nusername      {}\nsub           {}\nclient        {}\nissuer        {}\naccess until  {}",
                    clean(view.get("username").and_then(Value::as_str).unwrap_or("-")),
                    clean(view.get("sub").and_then(Value::as_str).unwrap_or("-")),
                    clean(&session.client_id),
                    clean(view.get("issuer").and_then(Value::as_str).unwrap_or("-")),
                    expires,
                )),
            }
        }
    }
}

/// The key a token just issued is bound to, as kept here.
struct KeptKey {
    alg: dpop::Algorithm,
    location: dpop::KeyLocation,
    path: std::path::PathBuf,
}

impl KeptKey {
    fn place(&self) -> String {
        match self.location {
            dpop::KeyLocation::Keyring => "the OS keyring".to_owned(),
            dpop::KeyLocation::File => self.path.display().to_string(),
        }
    }
}

/// Prints an issued token: in table mode the secret alone on stdout (so it
/// can be piped), the rest on stderr; in JSON mode the whole answer, with
/// where its DPoP key is kept (`dpopKey`) when it is bound to one.
fn print_issued(
    ctx: &Context,
    body: &Value,
    verb: &str,
    kept: Option<&KeptKey>,
) -> Result<(), CliError> {
    let id = clean(body.get("id").and_then(Value::as_str).unwrap_or("?"));
    let bound = body.get("dpopJkt").and_then(Value::as_str).map(clean);
    let binding = match (&bound, kept) {
        (Some(jkt), Some(kept)) => Some(format!(
            "Bound to DPoP key {jkt} ({}); its private key is kept in {}. \
             Send it with `agpat dpop request` or `agpat dpop headers`.",
            kept.alg.name(),
            kept.place()
        )),
        (Some(jkt), None) => Some(format!(
            "warning: token {id} is bound to DPoP key {jkt}, which is not kept here: \
             it works only where that key is (or rotate it with --dpop-new-key)."
        )),
        (None, _) => None,
    };
    match ctx.format {
        Format::Json => {
            let mut body = body.clone();
            if let (Some(kept), Some(obj)) = (kept, body.as_object_mut()) {
                obj.insert(
                    "dpopKey".into(),
                    json!({
                        "alg": kept.alg.name(),
                        "keptIn": kept.location,
                        "path": kept.path.display().to_string(),
                    }),
                );
            }
            stdout_line(&output::json(&body))?;
            if let Some(line) = binding.filter(|_| kept.is_none()) {
                eprintln!("{line}");
            }
            Ok(())
        }
        Format::Table => {
            let secret = body
                .get("token")
                .and_then(Value::as_str)
                .ok_or_else(|| CliError::Other(anyhow::anyhow!("the answer has no token")))?;
            // A genuine secret has no control character; a hostile answer
            // must not reach the terminal raw even here.
            stdout_line(&clean(secret))?;
            let mut meta = body.clone();
            if let Some(obj) = meta.as_object_mut() {
                obj.remove("token");
            }
            eprintln!(
                "{verb} token {id}. The secret above is shown only once: store it now.\n{}",
                output::token_detail(&meta)
            );
            if let Some(line) = binding {
                eprintln!("{line}");
            }
            Ok(())
        }
    }
}

/// Keeps `key` for the token `issued` names, once the service confirms it
/// bound the token to that key. A token bound to no key kept here is of no
/// use, and one left unbound was not what was asked: either way it is
/// revoked at once and its secret never shown.
async fn keep_key(
    ctx: &Context,
    api: &Api,
    issued: &Value,
    key: &shared::dpop::ProofKey,
) -> Result<KeptKey, CliError> {
    let id = issued
        .get("id")
        .and_then(Value::as_str)
        .and_then(|id| TokenId::parse(id).ok())
        .ok_or_else(|| CliError::Other(anyhow::anyhow!("the answer has no token id")))?;
    let jkt = key.public_jwk().thumbprint();
    let kept = if issued.get("dpopJkt").and_then(Value::as_str) == Some(jkt.as_str()) {
        ctx.keys.save(&id, key)
    } else {
        Err(CliError::Other(anyhow::anyhow!(
            "the service did not bind token {id} to the new key"
        )))
    };
    match kept {
        Ok(location) => Ok(KeptKey {
            alg: key.algorithm().into(),
            location,
            path: ctx.keys.path(&id),
        }),
        Err(e) => {
            let revoked = api
                .send(Method::DELETE, &["tokens", id.as_str()], &[], None)
                .await;
            let outcome = match revoked {
                Ok(_) => format!("token {id} was revoked and its secret is not shown"),
                Err(r) => format!(
                    "token {id} could NOT be revoked ({r}): revoke it with `agpat tokens revoke {id}`"
                ),
            };
            Err(CliError::Other(anyhow::anyhow!("{e}; {outcome}")))
        }
    }
}

async fn tokens(ctx: &Context, command: TokensCommand) -> Result<(), CliError> {
    let api = api(ctx).await?;
    match command {
        TokensCommand::Create {
            name,
            scopes,
            expires_in_days,
            expires_at,
            description,
            dpop: alg,
        } => {
            // Made before the request: if issuing fails, nothing is kept.
            let key = alg.map(dpop::generate).transpose()?;
            let mut body = serde_json::Map::new();
            body.insert("name".into(), json!(name));
            body.insert("scopes".into(), json!(scopes));
            match (expires_in_days, expires_at) {
                (_, Some(at)) => body.insert("expiresAt".into(), json!(at)),
                (days, None) => body.insert("expiresInDays".into(), json!(days.unwrap_or(30))),
            };
            if let Some(d) = description {
                body.insert("description".into(), json!(d));
            }
            if let Some(key) = &key {
                body.insert("dpopJwk".into(), key.public_jwk().to_value());
            }
            let body = Value::Object(body);
            let issued = api
                .json(Method::POST, &["tokens"], &[], Some(&body))
                .await?;
            let kept = match &key {
                Some(key) => Some(keep_key(ctx, &api, &issued, key).await?),
                None => None,
            };
            print_issued(ctx, &issued, "Created", kept.as_ref())
        }
        TokensCommand::List {
            status,
            limit,
            cursor,
            all,
        } => {
            let mut query = Vec::new();
            if let Some(s) = status {
                query.push(("status", s));
            }
            if let Some(l) = limit {
                query.push(("limit", l.to_string()));
            }
            let mut cursor = cursor;
            let mut items = Vec::new();
            let next = loop {
                let mut q = query.clone();
                if let Some(c) = &cursor {
                    q.push(("cursor", c.clone()));
                }
                let page = api.json(Method::GET, &["tokens"], &q, None).await?;
                items.extend(
                    page.get("items")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                );
                let next = page
                    .get("nextCursor")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                match next {
                    Some(n) if all => cursor = Some(n),
                    other => break other,
                }
            };
            match ctx.format {
                Format::Json => {
                    stdout_line(&output::json(&json!({"items": items, "nextCursor": next})))
                }
                Format::Table => {
                    stdout_line(&output::token_list(&items))?;
                    if let Some(n) = next {
                        eprintln!("(more: agpat tokens list --cursor {}, or --all)", clean(&n));
                    }
                    Ok(())
                }
            }
        }
        TokensCommand::Show { id } => {
            let view = api.json(Method::GET, &["tokens", &id], &[], None).await?;
            show(ctx, &view)
        }
        TokensCommand::Events { id, limit, cursor } => {
            let mut query = Vec::new();
            if let Some(l) = limit {
                query.push(("limit", l.to_string()));
            }
            if let Some(c) = cursor {
                query.push(("cursor", c));
            }
            let page = api
                .json(Method::GET, &["tokens", &id, "events"], &query, None)
                .await?;
            match ctx.format {
                Format::Json => stdout_line(&output::json(&page)),
                Format::Table => {
                    let items = page
                        .get("items")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    stdout_line(&output::events(&items))?;
                    if let Some(n) = page.get("nextCursor").and_then(Value::as_str) {
                        eprintln!(
                            "(more: agpat tokens events {} --cursor {})",
                            clean(&id),
                            clean(n)
                        );
                    }
                    Ok(())
                }
            }
        }
        TokensCommand::Patch {
            id,
            name,
            description,
            clear_description,
            scopes,
            expires_at,
        } => {
            let mut body = serde_json::Map::new();
            if let Some(n) = name {
                body.insert("name".into(), json!(n));
            }
            if clear_description {
                body.insert("description".into(), Value::Null);
            } else if let Some(d) = description {
                body.insert("description".into(), json!(d));
            }
            if !scopes.is_empty() {
                body.insert("scopes".into(), json!(scopes));
            }
            if let Some(at) = expires_at {
                body.insert("expiresAt".into(), json!(at));
            }
            if body.is_empty() {
                return Err(CliError::Usage(
                    "nothing to change: give --name, --description, --clear-description, \
                     --scope or --expires-at"
                        .into(),
                ));
            }
            let view = api
                .json(
                    Method::PATCH,
                    &["tokens", &id],
                    &[],
                    Some(&Value::Object(body)),
                )
                .await?;
            show(ctx, &view)
        }
        TokensCommand::Rotate {
            id,
            overlap_seconds,
            dpop_new_key,
            dpop_alg,
        } => {
            let old_id = TokenId::parse(&id).ok();
            let mut body = serde_json::Map::new();
            if let Some(s) = overlap_seconds {
                body.insert("overlapSeconds".into(), json!(s));
            }
            // The successor keeps the old key unless a new one is asked for;
            // a kept key that cannot be read stops the rotation here, before
            // a successor exists that nobody could use.
            let (new_key, carried) = if dpop_new_key {
                let old_alg = old_id
                    .as_ref()
                    .and_then(|old| ctx.keys.load(old).ok().flatten())
                    .map(|k| dpop::Algorithm::from(k.algorithm()));
                let key = dpop::generate(dpop_alg.or(old_alg).unwrap_or_default())?;
                body.insert("dpopJwk".into(), key.public_jwk().to_value());
                (Some(key), None)
            } else {
                let carried = match &old_id {
                    Some(old) => ctx.keys.load(old)?,
                    None => None,
                };
                (None, carried)
            };
            let body = Value::Object(body);
            let issued = api
                .json(Method::POST, &["tokens", &id, "rotate"], &[], Some(&body))
                .await?;
            let bound = issued.get("dpopJkt").and_then(Value::as_str);
            let kept = match (&new_key, &carried) {
                (Some(key), _) => Some(keep_key(ctx, &api, &issued, key).await?),
                (None, Some(key)) if bound == Some(key.public_jwk().thumbprint().as_str()) => {
                    Some(keep_key(ctx, &api, &issued, key).await?)
                }
                _ => None,
            };
            print_issued(ctx, &issued, "Rotated; new", kept.as_ref())
        }
        TokensCommand::Revoke { id } => {
            api.send(Method::DELETE, &["tokens", &id], &[], None)
                .await?;
            // A revoked token's key has nothing left to sign; `self` is the
            // PAT that made the call.
            let revoked = if id == "self" {
                match credential(ctx).await? {
                    Credential::Pat(pat) => shared::Pat::parse(pat.expose_secret())
                        .ok()
                        .map(|p| p.id().clone()),
                    Credential::Session(_) => None,
                }
            } else {
                TokenId::parse(&id).ok()
            };
            if let Some(revoked) = revoked
                && let Err(e) = ctx.keys.delete(&revoked)
            {
                eprintln!("warning: the DPoP key of token {revoked} was not removed: {e}");
            }
            match ctx.format {
                Format::Json => stdout_line(&output::json(&json!({"revoked": id}))),
                Format::Table => {
                    eprintln!("Revoked token {id}.");
                    Ok(())
                }
            }
        }
        TokensCommand::RevokeAll { yes } => {
            if !yes && !confirm("Revoke ALL your tokens? Type 'yes' to continue: ")? {
                return Err(CliError::Usage(
                    "not confirmed (pass --yes to revoke without asking)".into(),
                ));
            }
            let total = revoke_all(&api).await?;
            match ctx.format {
                Format::Json => {
                    stdout_line(&output::json(&json!({"revoked": total, "complete": true})))
                }
                Format::Table => {
                    eprintln!("Revoked {total} token(s).");
                    Ok(())
                }
            }
        }
    }
}

fn show(ctx: &Context, view: &Value) -> Result<(), CliError> {
    match ctx.format {
        Format::Json => stdout_line(&output::json(view)),
        Format::Table => stdout_line(&output::token_detail(view)),
    }
}

fn confirm(prompt: &str) -> Result<bool, CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::Usage(
            "refusing to revoke all tokens without confirmation: pass --yes".into(),
        ));
    }
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::Other(anyhow::anyhow!("cannot read stdin: {e}")))?;
    Ok(line.trim().eq_ignore_ascii_case("yes"))
}

/// Most rounds of `DELETE /tokens` one revoke-all makes before giving up.
const MAX_REVOKE_ALL_ROUNDS: u32 = 10_000;

/// `DELETE /tokens` until it answers `complete: true`, with a progress line
/// on stderr after each incomplete round.
async fn revoke_all(api: &Api) -> Result<u64, CliError> {
    let mut total = 0u64;
    for round in 1..=MAX_REVOKE_ALL_ROUNDS {
        let answer = api.json(Method::DELETE, &["tokens"], &[], None).await?;
        let revoked = answer.get("revoked").and_then(Value::as_u64).unwrap_or(0);
        total += revoked;
        if answer
            .get("complete")
            .and_then(Value::as_bool)
            .unwrap_or(true)
        {
            return Ok(total);
        }
        let remaining = answer
            .get("remaining")
            .and_then(Value::as_u64)
            .map(|r| format!(", {r} remaining"))
            .unwrap_or_default();
        eprintln!("revoke-all: {total} revoked so far{remaining}; continuing (round {round})…");
        if revoked == 0 {
            // No progress this round: give the service a moment.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    Err(CliError::Other(anyhow::anyhow!(
        "revoke-all did not complete after {MAX_REVOKE_ALL_ROUNDS} rounds ({total} revoked): run it again"
    )))
}

/// The token of an `agpat dpop` command and the key kept for it.
fn bound_token(
    ctx: &Context,
    token_id: Option<&str>,
) -> Result<(dpop::Token, shared::dpop::ProofKey), CliError> {
    let token = dpop::Token::from_env_or_stdin()?;
    let id = match token_id {
        // A whole token passed here is a secret: never echoed back.
        Some(text) if shared::Pat::looks_like_pat(text) => {
            return Err(CliError::Usage(
                "--token-id takes a token's id, not the token: the token comes from \
                 AGPAT_TOKEN or stdin"
                    .into(),
            ));
        }
        Some(text) => TokenId::parse(text)
            .map_err(|_| CliError::Usage(format!("--token-id {text:?} is not a token id")))?,
        None => token.id.clone(),
    };
    let key = ctx.keys.load(&id)?.ok_or_else(|| {
        CliError::NotLoggedIn(format!(
            "no DPoP key is kept here for token {id} (bound elsewhere, or created without \
             --dpop); `agpat tokens rotate {id} --dpop-new-key` binds its successor to a key kept here"
        ))
    })?;
    Ok((token, key))
}

/// A response body on stdout: as is into a pipe or file, with control
/// characters escaped (line breaks kept) on a terminal.
fn stdout_body(bytes: &[u8]) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    let written = if out.is_terminal() {
        let text = String::from_utf8_lossy(bytes);
        let shown: Vec<String> = text.lines().map(clean).collect();
        writeln!(out, "{}", shown.join("\n"))
    } else {
        out.write_all(bytes)
    };
    written
        .and_then(|()| out.flush())
        .map_err(|e| CliError::Other(anyhow::anyhow!("cannot write to stdout: {e}")))
}

async fn dpop_command(ctx: &Context, command: DpopCommand) -> Result<(), CliError> {
    match command {
        DpopCommand::Headers {
            token_id,
            method,
            url,
        } => {
            let url = transport::parse_request_url(&url)?;
            let method = dpop::method(&method)?;
            let (token, key) = bound_token(ctx, token_id.as_deref())?;
            let lines = dpop::header_lines(&key, &token.secret, &method, &url)?;
            stdout_line(lines.expose_secret())
        }
        DpopCommand::Request {
            token_id,
            method,
            url,
            data_file,
            content_type,
        } => {
            let url = if url.starts_with('/') {
                let base = transport::parse("the API URL", ctx.settings.api_url()?)?;
                format!("{}{url}", base.as_str().trim_end_matches('/'))
            } else {
                url
            };
            let url = transport::parse_request_url(&url)?;
            let method = dpop::method(&method)?;
            let body = data_file
                .map(|path| {
                    std::fs::read(&path).map_err(|e| {
                        CliError::Usage(format!("cannot read {}: {e}", path.display()))
                    })
                })
                .transpose()?;
            let (token, key) = bound_token(ctx, token_id.as_deref())?;
            let http = transport::client_without_redirects()?;
            let mut request = http
                .request(method.clone(), url.clone())
                .header(
                    reqwest::header::AUTHORIZATION,
                    dpop::authorization(&token.secret)?,
                )
                .header("DPoP", dpop::proof(&key, &token.secret, &method, &url)?);
            if let Some(body) = body {
                request = request
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        content_type.as_deref().unwrap_or("application/json"),
                    )
                    .body(body);
            }
            let response = request.send().await.map_err(|e| {
                CliError::Other(anyhow::anyhow!("cannot reach {url}: {}", e.without_url()))
            })?;
            let status = response.status();
            let bytes = response.bytes().await.map_err(|e| {
                CliError::Other(anyhow::anyhow!("unreadable answer: {}", e.without_url()))
            })?;
            stdout_body(&bytes)?;
            if status.is_success() {
                Ok(())
            } else {
                Err(CliError::Api(error::Problem::from_body(
                    status.as_u16(),
                    &bytes,
                )))
            }
        }
    }
}

fn config_command(
    ctx: &Context,
    command: ConfigCommand,
    mut file: FileConfig,
) -> Result<(), CliError> {
    let path = &ctx.paths.config_file;
    match command {
        ConfigCommand::Set { key, value } => {
            file.set(&key, &value)?;
            file.save(path)?;
            eprintln!("Set {key} in {}.", path.display());
            Ok(())
        }
        ConfigCommand::Unset { key } => {
            file.set(&key, "")?;
            file.save(path)?;
            eprintln!("Unset {key} in {}.", path.display());
            Ok(())
        }
        ConfigCommand::Show => match ctx.format {
            Format::Json => stdout_line(&output::json(&json!({
                "path": path.display().to_string(),
                "settings": serde_json::to_value(&file).unwrap_or(Value::Null),
            }))),
            Format::Table => {
                let mut lines = vec![format!("# {}", path.display())];
                let values = serde_json::to_value(&file).unwrap_or(Value::Null);
                for (key, help) in config::KEYS {
                    let value = values
                        .get(*key)
                        .map(|v| {
                            v.as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| v.to_string())
                        })
                        .unwrap_or_else(|| "(unset)".to_owned());
                    lines.push(format!("{key:<17} {value:<40} # {help}"));
                }
                stdout_line(&lines.join("\n"))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn dpop_takes_an_optional_algorithm_defaulting_to_es256() {
        let create = |extra: &[&str]| {
            let mut args = vec!["agpat", "tokens", "create", "--name", "n", "--scope", "a:b"];
            args.extend_from_slice(extra);
            match Cli::try_parse_from(args).map(|c| c.command) {
                Ok(Command::Tokens(TokensCommand::Create { dpop, .. })) => Ok(dpop),
                Ok(other) => panic!("{other:?}"),
                Err(e) => Err(e.kind()),
            }
        };
        assert_eq!(create(&[]), Ok(None));
        assert_eq!(create(&["--dpop"]), Ok(Some(dpop::Algorithm::Es256)));
        assert_eq!(
            create(&["--dpop", "--expires-in-days", "7"]),
            Ok(Some(dpop::Algorithm::Es256))
        );
        assert_eq!(
            create(&["--dpop", "eddsa"]),
            Ok(Some(dpop::Algorithm::Eddsa))
        );
        assert_eq!(
            create(&["--dpop", "rs256"]),
            Err(clap::error::ErrorKind::InvalidValue)
        );
        let rotate = |extra: &[&str]| {
            let mut args = vec!["agpat", "tokens", "rotate", "AAAAAAAAAAAAAAAAA"];
            args.extend_from_slice(extra);
            Cli::try_parse_from(args).map(|_| ()).map_err(|e| e.kind())
        };
        assert_eq!(rotate(&["--dpop-new-key"]), Ok(()));
        assert_eq!(rotate(&["--dpop-new-key", "--dpop-alg", "eddsa"]), Ok(()));
        assert_eq!(
            rotate(&["--dpop-alg", "eddsa"]),
            Err(clap::error::ErrorKind::MissingRequiredArgument)
        );
    }

    #[test]
    fn no_dpop_command_takes_the_token_as_a_flag() {
        for sub in ["headers", "request"] {
            let help = Cli::command()
                .find_subcommand_mut("dpop")
                .and_then(|d| d.find_subcommand_mut(sub))
                .map(|c| c.render_long_help().to_string())
                .unwrap_or_default();
            assert!(help.contains("AGPAT_TOKEN"), "{sub}: {help}");
            assert!(!help.contains("--token "), "{sub}: {help}");
        }
        let headers = Cli::command()
            .find_subcommand_mut("dpop")
            .and_then(|d| d.find_subcommand_mut("headers"))
            .map(|c| c.render_long_help().to_string())
            .unwrap_or_default();
        assert!(headers.contains("curl -H @-"), "{headers}");
    }

    #[test]
    fn the_long_help_documents_every_exit_code() {
        let help = Cli::command().render_long_help().to_string();
        for code in [
            error::exit::OK,
            error::exit::FAILURE,
            error::exit::USAGE,
            error::exit::UNAUTHENTICATED,
            error::exit::FORBIDDEN,
            error::exit::NOT_FOUND,
            error::exit::CONFLICT,
            error::exit::INVALID,
            error::exit::UNAVAILABLE,
        ] {
            assert!(help.contains(&format!("\n  {code}  ")), "{code}: {help}");
        }
        assert!(help.contains(error::EXIT_CODES_HELP), "{help}");
    }

    #[test]
    fn the_long_help_says_http_is_only_for_loopback_hosts() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("https://"), "{help}");
        assert!(help.contains("127.0.0.0/8, [::1] or localhost"), "{help}");
        assert!(
            error::EXIT_CODES_HELP.contains("http:// URL for a host that is not loopback"),
            "{help}"
        );
    }
}
