//! DPoP (RFC 9449) on the client side: the proof key of each bound token,
//! kept like the CLI's other secrets, and the headers each request needs.
//!
//! `tokens create --dpop` makes a key pair, sends its public half, and keeps
//! the private key under the new token's id: a record `dpop-keys/<id>.json`
//! (0600, in a 0700 directory next to the credentials file) names the
//! algorithm and the key's thumbprint, and holds the private key itself
//! (PKCS#8, base64) unless the OS keyring does (`AGPAT_CREDENTIAL_STORE`, as
//! for the refresh token).
//!
//! The private key is never printed: no command shows it, no error quotes
//! it, and nothing here derives `Debug` over it.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use reqwest::header::HeaderValue;
use reqwest::{Method, Url};
use secrecy::zeroize::{Zeroize, Zeroizing};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use shared::dpop::{ProofAlgorithm, ProofKey};
use shared::{Pat, TokenId};

use crate::credentials::{StoreChoice, keyring};
use crate::error::CliError;
use crate::files::{self, PrivateFileError};

/// The directory of the kept keys, next to the credentials file.
pub const KEYS_DIR: &str = "dpop-keys";

/// The proof algorithm of a new key (`--dpop`, `--dpop-alg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Algorithm {
    /// ECDSA with P-256 and SHA-256.
    #[default]
    Es256,
    /// Ed25519.
    Eddsa,
}

impl Algorithm {
    /// The JWS `alg` name (`ES256`, `EdDSA`).
    pub fn name(self) -> &'static str {
        ProofAlgorithm::from(self).name()
    }
}

impl From<Algorithm> for ProofAlgorithm {
    fn from(alg: Algorithm) -> Self {
        match alg {
            Algorithm::Es256 => ProofAlgorithm::Es256,
            Algorithm::Eddsa => ProofAlgorithm::EdDsa,
        }
    }
}

impl From<ProofAlgorithm> for Algorithm {
    fn from(alg: ProofAlgorithm) -> Self {
        match alg {
            ProofAlgorithm::Es256 => Algorithm::Es256,
            ProofAlgorithm::EdDsa => Algorithm::Eddsa,
        }
    }
}

fn algorithm_named(name: &str) -> Option<ProofAlgorithm> {
    [ProofAlgorithm::Es256, ProofAlgorithm::EdDsa]
        .into_iter()
        .find(|a| a.name() == name)
}

/// A new key pair from the OS CSPRNG.
pub fn generate(alg: Algorithm) -> Result<ProofKey, CliError> {
    ProofKey::generate(alg.into())
        .map_err(|e| CliError::Other(anyhow::anyhow!("cannot make a DPoP key: {e}")))
}

/// Where a key's private part is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyLocation {
    /// The OS keyring.
    Keyring,
    /// The key's record file (0600).
    File,
}

/// A key's record as stored. No `Debug`: it may hold the private key, which
/// is wiped from memory when the record goes.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    token_id: String,
    alg: String,
    jkt: String,
    key_store: KeyLocation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    private_key: Option<String>,
}

impl Drop for Record {
    fn drop(&mut self) {
        self.private_key.zeroize();
    }
}

/// The proof keys kept on this machine, one per token id.
#[derive(Debug, Clone)]
pub struct KeyStore {
    dir: PathBuf,
    choice: StoreChoice,
}

fn keyring_user(id: &TokenId) -> String {
    format!("dpop/{id}")
}

impl KeyStore {
    /// The store in `dir` (the [`KEYS_DIR`] directory).
    pub fn new(dir: PathBuf, choice: StoreChoice) -> Self {
        Self { dir, choice }
    }

    /// The record of token `id`'s key. A [`TokenId`] is 17 base62
    /// characters, so it cannot leave the directory.
    pub fn path(&self, id: &TokenId) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// The store's directory and its parent (the credentials directory)
    /// made, or kept, 0700.
    fn private_dirs(&self) -> std::io::Result<()> {
        if let Some(parent) = self.dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            files::ensure_private_dir(parent)?;
        }
        files::ensure_private_dir(&self.dir)
    }

    /// Keeps `key` for token `id`, replacing what was kept for it; returns
    /// where the private key went.
    pub fn save(&self, id: &TokenId, key: &ProofKey) -> Result<KeyLocation, CliError> {
        let encoded = Zeroizing::new(B64.encode(key.pkcs8()));
        let user = keyring_user(id);
        let in_keyring = match self.choice {
            StoreChoice::File => false,
            StoreChoice::Keyring => {
                keyring::set(&user, &encoded).map_err(|e| {
                    CliError::Other(anyhow::anyhow!("the OS keyring refused the DPoP key: {e}"))
                })?;
                true
            }
            // A lost refresh token means signing in again, a lost proof key
            // a dead token, and the Linux kernel keyring forgets after a
            // reboot or three idle days: unless the keyring is asked for,
            // keys go to the 0600 file.
            StoreChoice::Auto => false,
        };
        let location = if in_keyring {
            KeyLocation::Keyring
        } else {
            KeyLocation::File
        };
        let record = Record {
            token_id: id.to_string(),
            alg: key.algorithm().name().to_owned(),
            jkt: key.public_jwk().thumbprint().as_str().to_owned(),
            key_store: location,
            private_key: (!in_keyring).then(|| encoded.to_string()),
        };
        let path = self.path(id);
        let written = serde_json::to_vec_pretty(&record)
            .map(Zeroizing::new)
            .map_err(std::io::Error::other)
            .and_then(|bytes| {
                self.private_dirs()?;
                files::write_private(&path, &bytes)
            });
        if let Err(e) = written {
            if in_keyring {
                keyring::delete(&user);
            }
            return Err(CliError::Other(anyhow::anyhow!(
                "cannot keep the DPoP key in {}: {e}",
                path.display()
            )));
        }
        Ok(location)
    }

    /// The key kept for token `id`, if any. A record that group or others
    /// can access, that another user owns, that does not hold the key it
    /// names, or whose key the keyring lost, is an error that says what to
    /// do.
    pub fn load(&self, id: &TokenId) -> Result<Option<ProofKey>, CliError> {
        let path = self.path(id);
        let Some(bytes) = files::read_private(&path).map_err(|e| unusable(id, e))? else {
            return Ok(None);
        };
        let bytes = Zeroizing::new(bytes);
        let malformed = || {
            CliError::Other(anyhow::anyhow!(
                "{} is not a usable DPoP key record of token {id}: remove it, and rotate \
                 the token with `agpat tokens rotate {id} --dpop-new-key`",
                path.display()
            ))
        };
        let record: Record = serde_json::from_slice(&bytes).map_err(|_| malformed())?;
        let alg = algorithm_named(&record.alg)
            .filter(|_| record.token_id == id.as_str())
            .ok_or_else(malformed)?;
        let encoded = match record.key_store {
            KeyLocation::File => record.private_key.clone().map(Zeroizing::new),
            KeyLocation::Keyring => keyring::get(&keyring_user(id)).map(Zeroizing::new),
        }
        .ok_or_else(|| match record.key_store {
            KeyLocation::Keyring => CliError::Other(anyhow::anyhow!(
                "the DPoP key of token {id} is no longer in the OS keyring (the kernel \
                 keyring forgets it at reboot), so the token cannot be used from here: \
                 rotate it with `agpat tokens rotate {id} --dpop-new-key`, or revoke it"
            )),
            KeyLocation::File => malformed(),
        })?;
        let der = Zeroizing::new(B64.decode(encoded.as_bytes()).map_err(|_| malformed())?);
        let key = ProofKey::from_pkcs8(alg, &der).map_err(|_| malformed())?;
        if key.public_jwk().thumbprint().as_str() != record.jkt {
            return Err(malformed());
        }
        Ok(Some(key))
    }

    /// Forgets token `id`'s key (the record and any keyring entry); whether
    /// there was a record.
    pub fn delete(&self, id: &TokenId) -> Result<bool, CliError> {
        let path = self.path(id);
        let in_keyring = match files::read_private(&path) {
            Ok(None) => self.choice != StoreChoice::File,
            Ok(Some(bytes)) => serde_json::from_slice::<Record>(&Zeroizing::new(bytes))
                .map_or(true, |r| r.key_store == KeyLocation::Keyring),
            // Unreadable or untrusted: whatever it said, the entry goes too.
            Err(_) => true,
        };
        if in_keyring {
            keyring::delete(&keyring_user(id));
        }
        let existed = path.exists();
        files::remove_if_present(&path).map_err(|e| {
            CliError::Other(anyhow::anyhow!("cannot remove {}: {e}", path.display()))
        })?;
        Ok(existed)
    }
}

/// Why a key record cannot be used, with the fix. A record open to others
/// may have leaked its key: the binding must move to a new one.
fn unusable(id: &TokenId, e: PrivateFileError) -> CliError {
    match e {
        PrivateFileError::TooOpen { path, mode } => CliError::Other(anyhow::anyhow!(
            "{path} is accessible by group or others (mode {mode:04o}), so the DPoP key in it \
             is not used: run `chmod 600 {path}`; as the key may have leaked, then rotate the \
             token with `agpat tokens rotate {id} --dpop-new-key`",
            path = path.display()
        )),
        other => CliError::Other(anyhow::Error::new(other)),
    }
}

/// A request URL as a proof's `htu` names it: scheme, host, port and path,
/// without query and fragment (RFC 9449 §4.2).
pub fn htu(url: &Url) -> Result<String, CliError> {
    shared::dpop::normalise_url(url.as_str())
        .ok_or_else(|| CliError::Usage(format!("{url} cannot be named in a DPoP proof")))
}

/// The `Authorization` header of a bound token: `DPoP <token>`, marked
/// sensitive so that no HTTP log shows it.
pub fn authorization(token: &SecretString) -> Result<HeaderValue, CliError> {
    let mut value = HeaderValue::from_str(&format!("DPoP {}", token.expose_secret()))
        .map_err(|_| CliError::Usage("the token is not a valid header value".into()))?;
    value.set_sensitive(true);
    Ok(value)
}

/// A fresh proof (new `jti`, `iat` now) for one `method` request to `url`
/// with `token`.
pub fn proof(
    key: &ProofKey,
    token: &SecretString,
    method: &Method,
    url: &Url,
) -> Result<String, CliError> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    key.proof(method.as_str(), &htu(url)?, token.expose_secret(), now)
        .map_err(|e| CliError::Other(anyhow::anyhow!("cannot sign the DPoP proof: {e}")))
}

/// The two header lines of one request, as `agpat dpop headers` prints
/// them (and `curl -H @-` reads them).
pub fn header_lines(
    key: &ProofKey,
    token: &SecretString,
    method: &Method,
    url: &Url,
) -> Result<SecretString, CliError> {
    let proof = proof(key, token, method, url)?;
    Ok(SecretString::from(format!(
        "Authorization: DPoP {}\nDPoP: {proof}",
        token.expose_secret()
    )))
}

/// An HTTP method from the command line, in upper case (the proof's `htm`
/// must be the method as sent).
pub fn method(text: &str) -> Result<Method, CliError> {
    Method::from_bytes(text.to_ascii_uppercase().as_bytes())
        .map_err(|_| CliError::Usage(format!("{text:?} is not an HTTP method")))
}

/// A personal access token and its id.
pub struct Token {
    /// The whole token (secret).
    pub secret: SecretString,
    /// Its public id.
    pub id: TokenId,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({})", self.id)
    }
}

impl Token {
    /// Parses a PAT. The error never quotes it.
    pub fn parse(text: &str) -> Result<Self, CliError> {
        let pat = Pat::parse(text.trim()).map_err(|e| {
            CliError::Usage(format!(
                "the token is not an agpat personal access token ({e})"
            ))
        })?;
        Ok(Self {
            secret: SecretString::from(pat.expose().to_owned()),
            id: pat.id().clone(),
        })
    }

    /// The token of an `agpat dpop` command: `AGPAT_TOKEN` when set, else the
    /// first line of stdin (a prompt without echo on a terminal). Never a
    /// flag: command lines are seen by other local users and shell history.
    pub fn from_env_or_stdin() -> Result<Self, CliError> {
        if let Ok(token) = std::env::var("AGPAT_TOKEN")
            && !token.trim().is_empty()
        {
            return Self::parse(&Zeroizing::new(token));
        }
        let stdin = std::io::stdin();
        let line = if stdin.is_terminal() {
            Zeroizing::new(rpassword::prompt_password("Token: ").map_err(|e| {
                CliError::Usage(format!(
                    "cannot prompt for the token ({e}): set AGPAT_TOKEN"
                ))
            })?)
        } else {
            let mut line = Zeroizing::new(String::new());
            stdin
                .lock()
                .read_line(&mut line)
                .map_err(|e| CliError::Other(anyhow::anyhow!("cannot read stdin: {e}")))?;
            line
        };
        if line.trim().is_empty() {
            return Err(CliError::Usage(
                "no token: set AGPAT_TOKEN, or give it as the first line of stdin".into(),
            ));
        }
        Self::parse(&line)
    }
}

/// The directory of the kept keys under the credentials directory `dir`.
pub fn keys_dir(dir: &Path) -> PathBuf {
    dir.join(KEYS_DIR)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path) -> KeyStore {
        KeyStore::new(keys_dir(&dir.join("agpat")), StoreChoice::File)
    }

    fn id(text: &str) -> TokenId {
        TokenId::parse(text).unwrap()
    }

    #[test]
    fn a_kept_key_comes_back_the_same_and_is_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let id = id("AAAAAAAAAAAAAAAAA");
        assert!(store.load(&id).unwrap().is_none());
        for alg in [Algorithm::Es256, Algorithm::Eddsa] {
            let key = generate(alg).unwrap();
            assert_eq!(store.save(&id, &key).unwrap(), KeyLocation::File);
            let back = store.load(&id).unwrap().unwrap();
            assert_eq!(back.public_jwk(), key.public_jwk());
            assert_eq!(back.algorithm(), ProofAlgorithm::from(alg));
        }
        assert!(store.delete(&id).unwrap());
        assert!(!store.delete(&id).unwrap());
        assert!(store.load(&id).unwrap().is_none());
    }

    #[cfg(unix)]
    #[test]
    fn a_key_record_is_private_and_refused_once_others_can_read_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let id = id("BBBBBBBBBBBBBBBBB");
        store
            .save(&id, &generate(Algorithm::Es256).unwrap())
            .unwrap();
        let path = store.path(&id);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(mode(path.parent().unwrap().parent().unwrap()), 0o700);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = store.load(&id).err().unwrap().render();
        assert!(
            err.contains(&format!("chmod 600 {}", path.display())),
            "{err}"
        );
        assert!(err.contains("--dpop-new-key"), "{err}");
    }

    #[test]
    fn a_record_that_does_not_hold_the_key_it_names_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let (a, b) = (id("CCCCCCCCCCCCCCCCC"), id("DDDDDDDDDDDDDDDDD"));
        store
            .save(&a, &generate(Algorithm::Es256).unwrap())
            .unwrap();
        store
            .save(&b, &generate(Algorithm::Es256).unwrap())
            .unwrap();
        let read = |i: &TokenId| -> serde_json::Value {
            serde_json::from_slice(&std::fs::read(store.path(i)).unwrap()).unwrap()
        };
        // Another key under a's thumbprint, then a record of another token.
        let mut swapped = read(&a);
        swapped["privateKey"] = read(&b)["privateKey"].clone();
        files::write_private(&store.path(&a), swapped.to_string().as_bytes()).unwrap();
        assert!(store.load(&a).is_err());
        files::write_private(&store.path(&a), read(&b).to_string().as_bytes()).unwrap();
        assert!(store.load(&a).is_err());
        files::write_private(&store.path(&a), b"{}").unwrap();
        assert!(store.load(&a).is_err());
    }

    #[test]
    fn the_record_names_the_algorithm_and_thumbprint() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let id = id("EEEEEEEEEEEEEEEEE");
        let key = generate(Algorithm::Eddsa).unwrap();
        store.save(&id, &key).unwrap();
        let record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(store.path(&id)).unwrap()).unwrap();
        assert_eq!(record["alg"], "EdDSA");
        assert_eq!(record["tokenId"], id.as_str());
        assert_eq!(record["keyStore"], "file");
        assert_eq!(record["jkt"], key.public_jwk().thumbprint().as_str());
    }

    // Writes to the real OS keyring. Where a process has no possessed
    // session keyring (containers, CI), keyutils can take a write it then
    // refuses to return or delete, leaving an entry behind until the
    // persistent keyring expires: hence opt-in, `-- --ignored`.
    #[test]
    #[ignore = "writes to the OS keyring; run with --ignored"]
    fn the_keyring_holds_the_key_where_it_works_else_auto_keeps_it_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        // A fresh id: the kernel keyring is shared by concurrent test runs.
        let id = Pat::generate().unwrap().id().clone();
        let user = keyring_user(&id);
        let key = generate(Algorithm::Es256).unwrap();
        let auto = KeyStore::new(keys_dir(dir.path()), StoreChoice::Auto);
        let location = auto.save(&id, &key).unwrap();
        let record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(auto.path(&id)).unwrap()).unwrap();
        match location {
            KeyLocation::Keyring => {
                assert_eq!(record["keyStore"], "keyring");
                assert!(record.get("privateKey").is_none(), "{record}");
                assert!(keyring::get(&user).is_some());
            }
            KeyLocation::File => {
                assert_eq!(record["keyStore"], "file");
                assert!(record["privateKey"].is_string());
                assert!(keyring::get(&user).is_none());
            }
        }
        let back = auto.load(&id).unwrap().unwrap();
        assert_eq!(back.public_jwk(), key.public_jwk());
        assert!(auto.delete(&id).unwrap());
        assert!(keyring::get(&user).is_none());
        assert!(auto.load(&id).unwrap().is_none());
    }

    #[test]
    fn htu_drops_query_and_fragment() {
        let url = Url::parse("http://127.0.0.1:3000/docs/readme?x=1#top").unwrap();
        assert_eq!(htu(&url).unwrap(), "http://127.0.0.1:3000/docs/readme");
    }

    #[test]
    fn the_header_lines_are_the_token_and_a_proof_for_the_request() {
        let key = generate(Algorithm::Es256).unwrap();
        let token = SecretString::from("agpat_x".to_owned());
        let url = Url::parse("https://api.example.com/prod/docs?page=2").unwrap();
        let lines = header_lines(&key, &token, &method("get").unwrap(), &url).unwrap();
        let lines: Vec<&str> = lines.expose_secret().lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0], "Authorization: DPoP agpat_x");
        let proof = lines[1].strip_prefix("DPoP: ").unwrap();
        let checked = shared::dpop::check_proof(
            proof,
            &shared::dpop::ProofRequirements {
                method: "GET",
                urls: &["https://api.example.com/prod/docs".to_owned()],
                access_token: "agpat_x",
                now: time::OffsetDateTime::now_utc().unix_timestamp(),
                max_age_secs: 60,
                max_skew_secs: 5,
            },
        )
        .unwrap();
        assert_eq!(checked.jkt, key.public_jwk().thumbprint());
        // A fresh jti each time.
        let again = header_lines(&key, &token, &Method::GET, &url).unwrap();
        assert_ne!(again.expose_secret().lines().nth(1), Some(lines[1]));
    }

    #[test]
    fn a_token_that_is_not_a_pat_is_refused_without_being_quoted() {
        let err = Token::parse("agpat_not-really-a-token").err().unwrap();
        assert_eq!(err.exit_code(), crate::error::exit::USAGE);
        assert!(!err.render().contains("not-really"), "{}", err.render());
        assert!(method("no method").is_err());
        assert_eq!(method("post").unwrap(), Method::POST);
    }
}
