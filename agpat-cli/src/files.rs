//! Private files: created with mode 0600 from the first byte (never
//! world-readable, not even briefly) and replaced atomically; read only when
//! still private (owner and mode checked, as ssh does with its keys).

use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` through a fresh 0600 temporary file in the same
/// directory, then renames it over `path`. The directory is created 0700.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    create_private_dir(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let suffix = u64::from_le_bytes(crate::random::os_random::<8>()?);
    let tmp = dir.join(format!(".{name}.{}.{suffix:016x}.tmp", std::process::id()));
    let result = (|| {
        let mut file = open_private(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(unix)]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Why a private file is not used.
#[derive(Debug, thiserror::Error)]
pub enum PrivateFileError {
    /// Group or others have some access: what it holds may have leaked, and
    /// it is not trusted (as ssh does with a private key).
    #[error(
        "{path} is accessible by group or others (mode {mode:04o}), so it is not used: \
         run `chmod 600 {path}`; as the session in it may have leaked, then run \
         `agpat logout` (it revokes the refresh token) and `agpat login`",
        path = .path.display()
    )]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Someone else owns it, and so could have written it.
    #[error(
        "{path} belongs to uid {owner}, not to you (uid {me}), and is not used: remove it \
         and sign in again",
        path = .path.display()
    )]
    NotOwned {
        /// The file.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The current user.
        me: u32,
    },
    /// It could not be read.
    #[error("cannot read {path}: {source}", path = .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Reads a private file (`None` when it does not exist). On Unix it must be
/// owned by the current user and have no group or other permission bits; the
/// checks are made on the opened file, so it cannot be swapped in between.
pub fn read_private(path: &Path) -> Result<Option<Vec<u8>>, PrivateFileError> {
    use std::io::Read;
    let io = |source| PrivateFileError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = file.metadata().map_err(io)?;
        check_private(path, meta.mode() & 0o7777, meta.uid(), current_uid())?;
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io)?;
    Ok(Some(bytes))
}

/// The rule [`read_private`] applies to a file's `mode` and `owner`: no
/// permission bit for group or others, and owned by `me` (when known).
#[cfg(unix)]
pub fn check_private(
    path: &Path,
    mode: u32,
    owner: u32,
    me: Option<u32>,
) -> Result<(), PrivateFileError> {
    if let Some(me) = me
        && owner != me
    {
        return Err(PrivateFileError::NotOwned {
            path: path.to_owned(),
            owner,
            me,
        });
    }
    if mode & 0o077 != 0 {
        return Err(PrivateFileError::TooOpen {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

/// The current (effective) user id. On Linux `/proc/self` belongs to it; no
/// dependency is needed for one number. Elsewhere `None`: the owner check is
/// skipped, while the mode check still applies.
#[cfg(unix)]
pub fn current_uid() -> Option<u32> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").ok().map(|m| m.uid())
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// Makes `dir` a private directory: created 0700 when missing, and an existing
/// one with group or other bits tightened to 0700 (it holds the credentials
/// file: others must not list it or replace files in it).
#[cfg(unix)]
pub fn ensure_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    create_private_dir(dir)?;
    let mode = std::fs::metadata(dir)?.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Creates `dir` when missing (no permission model to tighten here).
#[cfg(not(unix))]
pub fn ensure_private_dir(dir: &Path) -> std::io::Result<()> {
    create_private_dir(dir)
}

/// Removes a file; a missing file is fine.
pub fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_file_replaces_the_old_one_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a").join("creds.json");
        write_private(&path, b"one").unwrap();
        write_private(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("creds.json")]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().unwrap()), 0o700);
        }
    }

    #[cfg(unix)]
    fn chmod(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_private_file_open_to_group_or_others_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.json");
        assert!(read_private(&path).unwrap().is_none(), "missing is none");
        write_private(&path, b"secret").unwrap();
        for loose in [0o644, 0o640, 0o604, 0o620, 0o602, 0o610] {
            chmod(&path, loose);
            let err = read_private(&path).err().unwrap();
            assert!(
                matches!(err, PrivateFileError::TooOpen { .. }),
                "{loose:o}: {err}"
            );
            let text = err.to_string();
            assert!(text.contains(&format!("{loose:04o}")), "{text}");
            assert!(
                text.contains(&format!("chmod 600 {}", path.display())),
                "{text}"
            );
            assert!(!text.contains("secret"), "{text}");
        }
        for fine in [0o600, 0o400] {
            chmod(&path, fine);
            assert_eq!(read_private(&path).unwrap().unwrap(), b"secret");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_private_file_owned_by_another_user_is_refused() {
        let path = Path::new("/home/u/.config/agpat/credentials.json");
        assert!(check_private(path, 0o600, 1000, Some(1000)).is_ok());
        let err = check_private(path, 0o600, 0, Some(1000)).err().unwrap();
        assert!(matches!(err, PrivateFileError::NotOwned { .. }), "{err}");
        assert!(err.to_string().contains("uid 0"), "{err}");
        // Where the current user cannot be learnt, the mode check still applies.
        assert!(check_private(path, 0o600, 0, None).is_ok());
        assert!(check_private(path, 0o640, 1000, None).is_err());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_current_user_is_known_on_linux() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let mine = std::fs::metadata(dir.path()).unwrap().uid();
        assert_eq!(current_uid(), Some(mine));
    }

    #[cfg(unix)]
    #[test]
    fn a_looser_existing_directory_is_tightened_to_0700() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("agpat");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        ensure_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700, "created 0700");
        for loose in [0o755, 0o750, 0o711, 0o777] {
            chmod(&dir, loose);
            ensure_private_dir(&dir).unwrap();
            assert_eq!(mode(&dir), 0o700, "{loose:o}");
        }
    }
}
