//! The signed-in session: a short-lived Cognito access token (cached with its
//! expiry) and the refresh token, which lives in the OS keyring where there is
//! one, else in the same 0600 credentials file.
//!
//! `AGPAT_CREDENTIAL_STORE` chooses: `auto` (default: keyring, falling back to
//! the file), `keyring` (keyring or fail) or `file`.

use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::error::CliError;
use crate::files;

const KEYRING_SERVICE: &str = "agpat";

/// Where the refresh token is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RefreshStore {
    /// The OS keyring.
    Keyring,
    /// The credentials file (0600).
    File,
}

/// Which store `AGPAT_CREDENTIAL_STORE` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreChoice {
    /// Keyring when it works, else the file.
    Auto,
    /// Keyring only.
    Keyring,
    /// File only.
    File,
}

impl StoreChoice {
    /// From `AGPAT_CREDENTIAL_STORE`.
    pub fn from_env() -> Result<Self, CliError> {
        match std::env::var("AGPAT_CREDENTIAL_STORE").as_deref() {
            Err(_) | Ok("") | Ok("auto") => Ok(Self::Auto),
            Ok("keyring") => Ok(Self::Keyring),
            Ok("file") => Ok(Self::File),
            Ok(other) => Err(CliError::Usage(format!(
                "AGPAT_CREDENTIAL_STORE must be auto, keyring or file, not {other:?}"
            ))),
        }
    }
}

/// A signed-in Cognito session. `Debug` never shows a token.
#[derive(Debug, Clone)]
pub struct Session {
    /// Who signed in.
    pub username: String,
    /// The app client that issued the tokens (needed to refresh).
    pub client_id: String,
    /// The pool's region.
    pub region: String,
    /// Cognito endpoint override, if any (moto).
    pub cognito_endpoint: Option<String>,
    /// The access token sent to the API.
    pub access_token: SecretString,
    /// When the access token expires (Unix seconds).
    pub access_expires_at: i64,
    /// The refresh token.
    pub refresh_token: Option<SecretString>,
}

/// The credentials file as stored.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stored {
    username: String,
    client_id: String,
    region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cognito_endpoint: Option<String>,
    access_token: String,
    access_expires_at: i64,
    refresh_store: Option<RefreshStore>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

/// Reads and writes the session.
#[derive(Debug, Clone)]
pub struct CredentialStore {
    file: PathBuf,
    choice: StoreChoice,
}

impl CredentialStore {
    /// The store over `file`.
    pub fn new(file: PathBuf, choice: StoreChoice) -> Self {
        Self { file, choice }
    }

    /// The credentials file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Saves the session; returns where the refresh token went.
    pub fn save(&self, session: &Session) -> Result<Option<RefreshStore>, CliError> {
        let mut refresh_store = None;
        let mut inline = None;
        if let Some(refresh) = &session.refresh_token {
            let in_keyring = match self.choice {
                StoreChoice::File => false,
                StoreChoice::Keyring => {
                    keyring::set(&keyring_user(session), refresh.expose_secret()).map_err(|e| {
                        CliError::Other(anyhow::anyhow!("the OS keyring refused: {e}"))
                    })?;
                    true
                }
                StoreChoice::Auto => {
                    keyring::set(&keyring_user(session), refresh.expose_secret()).is_ok()
                }
            };
            if in_keyring {
                refresh_store = Some(RefreshStore::Keyring);
            } else {
                refresh_store = Some(RefreshStore::File);
                inline = Some(refresh.expose_secret().to_owned());
            }
        }
        let stored = Stored {
            username: session.username.clone(),
            client_id: session.client_id.clone(),
            region: session.region.clone(),
            cognito_endpoint: session.cognito_endpoint.clone(),
            access_token: session.access_token.expose_secret().to_owned(),
            access_expires_at: session.access_expires_at,
            refresh_store,
            refresh_token: inline,
        };
        let bytes = serde_json::to_vec_pretty(&stored)
            .map_err(|e| CliError::Other(anyhow::anyhow!("cannot encode the session: {e}")))?;
        self.private_dir(true)?;
        files::write_private(&self.file, &bytes).map_err(|e| {
            CliError::Other(anyhow::anyhow!("cannot write {}: {e}", self.file.display()))
        })?;
        Ok(refresh_store)
    }

    /// The credentials file's directory made (`create`) or kept 0700.
    fn private_dir(&self, create: bool) -> Result<(), CliError> {
        let Some(dir) = self.file.parent().filter(|d| !d.as_os_str().is_empty()) else {
            return Ok(());
        };
        if !create && !dir.is_dir() {
            return Ok(());
        }
        files::ensure_private_dir(dir).map_err(|e| {
            CliError::Other(anyhow::anyhow!(
                "cannot make {} private (0700): {e}",
                dir.display()
            ))
        })
    }

    /// The saved session, if any. A credentials file that group or others
    /// can access, or that another user owns, is refused with how to fix it.
    pub fn load(&self) -> Result<Option<Session>, CliError> {
        self.private_dir(false)?;
        let Some(bytes) =
            files::read_private(&self.file).map_err(|e| CliError::Other(anyhow::Error::new(e)))?
        else {
            return Ok(None);
        };
        let stored: Stored = serde_json::from_slice(&bytes).map_err(|_| {
            CliError::NotLoggedIn(format!(
                "{} is malformed: run `agpat logout`, then `agpat login`",
                self.file.display()
            ))
        })?;
        let mut session = Session {
            username: stored.username,
            client_id: stored.client_id,
            region: stored.region,
            cognito_endpoint: stored.cognito_endpoint,
            access_token: SecretString::from(stored.access_token),
            access_expires_at: stored.access_expires_at,
            refresh_token: None,
        };
        session.refresh_token = match stored.refresh_store {
            Some(RefreshStore::File) => stored.refresh_token.map(SecretString::from),
            Some(RefreshStore::Keyring) => {
                keyring::get(&keyring_user(&session)).map(SecretString::from)
            }
            None => None,
        };
        Ok(Some(session))
    }

    /// Forgets the session: the keyring entry and the file.
    pub fn delete(&self) -> Result<bool, CliError> {
        let existed = self.file.exists();
        if let Ok(Some(session)) = self.load() {
            keyring::delete(&keyring_user(&session));
        }
        files::remove_if_present(&self.file).map_err(|e| {
            CliError::Other(anyhow::anyhow!(
                "cannot remove {}: {e}",
                self.file.display()
            ))
        })?;
        Ok(existed)
    }
}

fn keyring_user(session: &Session) -> String {
    format!("{}/{}", session.client_id, session.username)
}

/// The OS keyring (Linux: the kernel's keyutils; elsewhere none yet, so the
/// file is used). The DPoP key store ([`crate::dpop`]) keeps its keys here too.
pub(crate) mod keyring {
    #[cfg(target_os = "linux")]
    fn entry(user: &str) -> Result<keyring_core::Entry, keyring_core::Error> {
        let store: std::sync::Arc<keyring_core::CredentialStore> =
            linux_keyutils_keyring_store::Store::new()?;
        keyring_core::Entry::new_in_store(&store, super::KEYRING_SERVICE, user)
    }

    #[cfg(not(target_os = "linux"))]
    fn entry(_user: &str) -> Result<keyring_core::Entry, keyring_core::Error> {
        Err(keyring_core::Error::NoDefaultStore)
    }

    pub(crate) fn set(user: &str, secret: &str) -> Result<(), keyring_core::Error> {
        let entry = entry(user)?;
        entry.set_password(secret)?;
        // Read back: a keyring that accepts writes it cannot return is no store.
        match entry.get_password() {
            Ok(read) if read == secret => Ok(()),
            Ok(_) => Err(keyring_core::Error::NoEntry),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn get(user: &str) -> Option<String> {
        entry(user).ok()?.get_password().ok()
    }

    pub(crate) fn delete(user: &str) {
        if let Ok(entry) = entry(user) {
            let _ = entry.delete_credential();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session {
            username: "demo".into(),
            client_id: "client".into(),
            region: "us-east-1".into(),
            cognito_endpoint: None,
            access_token: SecretString::from("access-secret"),
            access_expires_at: 42,
            refresh_token: Some(SecretString::from("refresh-secret")),
        }
    }

    #[test]
    fn the_file_store_round_trips_and_forgets() {
        let dir = tempfile::tempdir().unwrap();
        let store = CredentialStore::new(dir.path().join("credentials.json"), StoreChoice::File);
        assert!(store.load().unwrap().is_none());
        assert_eq!(store.save(&session()).unwrap(), Some(RefreshStore::File));
        let back = store.load().unwrap().unwrap();
        assert_eq!(
            back.refresh_token.unwrap().expose_secret(),
            "refresh-secret"
        );
        assert_eq!(back.access_token.expose_secret(), "access-secret");
        assert!(store.delete().unwrap());
        assert!(store.load().unwrap().is_none());
    }

    #[cfg(unix)]
    #[test]
    fn a_credentials_file_readable_by_others_is_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credentials.json");
        let store = CredentialStore::new(file.clone(), StoreChoice::File);
        store.save(&session()).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = store.load().err().unwrap();
        assert_eq!(err.exit_code(), crate::error::exit::FAILURE, "{err}");
        let text = err.render();
        assert!(
            text.contains(&format!("chmod 600 {}", file.display())),
            "{text}"
        );
        assert!(!text.contains("secret"), "{text}");
        // Fixed as told, it loads again.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(store.load().unwrap().is_some());
    }

    #[cfg(unix)]
    #[test]
    fn loading_and_saving_tighten_the_credentials_directory_to_0700() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("agpat");
        std::fs::create_dir(&dir).unwrap();
        let mode = || std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        let loosen = || {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        let store = CredentialStore::new(dir.join("credentials.json"), StoreChoice::File);
        loosen();
        store.save(&session()).unwrap();
        assert_eq!(mode(), 0o700, "save");
        loosen();
        store.load().unwrap().unwrap();
        assert_eq!(mode(), 0o700, "load");
    }

    #[test]
    fn debug_never_shows_a_token() {
        let text = format!("{:?}", session());
        assert!(!text.contains("secret"), "{text}");
    }
}
