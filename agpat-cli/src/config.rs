//! Where the CLI's settings come from: a flag, else an environment variable
//! (clap reads both), else the config file, else a default.
//!
//! The config file is `$AGPAT_CONFIG`, else `$XDG_CONFIG_HOME/agpat/config.toml`,
//! else `~/.config/agpat/config.toml`. It never holds a secret.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::CliError;
use crate::files;
use crate::transport;

/// The region used when nothing names one.
pub const DEFAULT_REGION: &str = "us-east-1";

/// The keys `agpat config set` accepts, with what each means.
pub const KEYS: &[(&str, &str)] = &[
    (
        "api_url",
        "base URL of the API (https://api.example.com/prod)",
    ),
    ("region", "AWS region of the Cognito user pool"),
    (
        "client_id",
        "Cognito app client id (a public client, no secret)",
    ),
    (
        "cognito_endpoint",
        "Cognito endpoint override (moto: http://127.0.0.1:4566)",
    ),
    (
        "hosted_ui",
        "hosted UI base URL for `login --web` (https://<domain>.auth.<region>.amazoncognito.com)",
    ),
    (
        "callback_port",
        "loopback port for `login --web` (0: any free port)",
    ),
];

/// The config file's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Base URL of the API.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// AWS region of the user pool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Cognito app client id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Cognito endpoint override (moto).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cognito_endpoint: Option<String>,
    /// Hosted UI base URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hosted_ui: Option<String>,
    /// Loopback port for the authorization-code redirect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_port: Option<u16>,
}

impl FileConfig {
    /// Reads the file; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<Self, CliError> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| {
                CliError::Config(format!(
                    "{} is not a valid config file: {e}",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(CliError::Config(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    /// Writes the file (mode 0600, atomically).
    pub fn save(&self, path: &Path) -> Result<(), CliError> {
        let text = toml::to_string(self)
            .map_err(|e| CliError::Config(format!("cannot encode the config: {e}")))?;
        files::write_private(path, text.as_bytes())
            .map_err(|e| CliError::Config(format!("cannot write {}: {e}", path.display())))
    }

    /// Sets one key from its text; unknown keys and bad values are refused.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), CliError> {
        let text = || Some(value.trim().to_owned()).filter(|v| !v.is_empty());
        // A URL is checked here too, so a cleartext one is refused when set,
        // not at its first use.
        let url = |what: &str| match text() {
            None => Ok(None),
            Some(v) => transport::parse(what, &v).map(|_| Some(v.trim_end_matches('/').to_owned())),
        };
        match key {
            "api_url" => self.api_url = url("api_url")?,
            "region" => self.region = text(),
            "client_id" => self.client_id = text(),
            "cognito_endpoint" => self.cognito_endpoint = url("cognito_endpoint")?,
            "hosted_ui" => self.hosted_ui = url("hosted_ui")?,
            "callback_port" => {
                self.callback_port = match text() {
                    None => None,
                    Some(v) => Some(v.parse().map_err(|_| {
                        CliError::Usage(format!("callback_port must be 0 to 65535, not {v:?}"))
                    })?),
                }
            }
            _ => {
                let known: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
                return Err(CliError::Usage(format!(
                    "unknown key {key:?}; known keys: {}",
                    known.join(", ")
                )));
            }
        }
        Ok(())
    }
}

/// Where the CLI keeps its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// The config file.
    pub config_file: PathBuf,
    /// The directory of the credentials file (`credentials.json`).
    pub dir: PathBuf,
}

impl Paths {
    /// From the environment: `AGPAT_CONFIG`, `XDG_CONFIG_HOME`, `HOME`.
    pub fn from_env() -> Result<Self, CliError> {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let dir = match (var("XDG_CONFIG_HOME"), var("HOME")) {
            (Some(xdg), _) => PathBuf::from(xdg).join("agpat"),
            (None, Some(home)) => PathBuf::from(home).join(".config").join("agpat"),
            (None, None) => {
                return Err(CliError::Config(
                    "neither XDG_CONFIG_HOME nor HOME is set: nowhere to keep the config".into(),
                ));
            }
        };
        let config_file = var("AGPAT_CONFIG")
            .map(PathBuf::from)
            .unwrap_or_else(|| dir.join("config.toml"));
        Ok(Self { config_file, dir })
    }

    /// The credentials file.
    pub fn credentials_file(&self) -> PathBuf {
        self.dir.join("credentials.json")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_accepts_known_keys_and_refuses_others() {
        let mut c = FileConfig::default();
        c.set("api_url", "http://127.0.0.1:3000/").unwrap();
        c.set("callback_port", "8765").unwrap();
        assert_eq!(c.api_url.as_deref(), Some("http://127.0.0.1:3000"));
        assert_eq!(c.callback_port, Some(8765));
        assert!(matches!(c.set("password", "x"), Err(CliError::Usage(_))));
        assert!(matches!(
            c.set("callback_port", "70000"),
            Err(CliError::Usage(_))
        ));
        c.set("api_url", "").unwrap();
        assert_eq!(c.api_url, None);
    }

    #[test]
    fn set_refuses_a_cleartext_url_for_a_remote_host() {
        let mut c = FileConfig::default();
        for key in ["api_url", "hosted_ui", "cognito_endpoint"] {
            let err = c.set(key, "http://example.com").err().unwrap();
            assert!(matches!(err, CliError::Usage(_)), "{key}: {err}");
            assert!(err.to_string().contains("https://"), "{key}: {err}");
            c.set(key, "http://127.0.0.1:4566").unwrap();
            c.set(key, "https://example.com/").unwrap();
        }
        assert_eq!(c.hosted_ui.as_deref(), Some("https://example.com"));
    }

    #[test]
    fn the_file_round_trips_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("config.toml");
        assert_eq!(FileConfig::load(&path).unwrap(), FileConfig::default());
        let mut c = FileConfig::default();
        c.set("client_id", "abc").unwrap();
        c.save(&path).unwrap();
        assert_eq!(FileConfig::load(&path).unwrap(), c);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn an_unknown_key_in_the_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "api_ur = \"x\"\n").unwrap();
        assert!(matches!(FileConfig::load(&path), Err(CliError::Config(_))));
    }
}
