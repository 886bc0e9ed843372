//! The system key of the HTTP API, kept in the data directory when not configured.

use crate::Error;
use durable_runtime::private_files::write_private;
use std::path::{Path, PathBuf};

/// File name of the generated system key inside the data directory.
pub const SYSTEM_KEY_FILE: &str = "system.key";

/// The path of the system key file in `data_dir`.
pub fn system_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SYSTEM_KEY_FILE)
}

/// Reads the system key of `data_dir`, generating it (32 random bytes, hex, owner-only file
/// permissions) on first use.
pub fn load_or_create_system_key(data_dir: &Path) -> Result<String, Error> {
    let path = system_key_path(data_dir);
    let io = |what: &'static str, source: std::io::Error| Error::Io { what, path: path.clone(), source };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let key = text.trim().to_owned();
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(Error::Config(format!(
                    "{} must hold one key of printable characters; delete it to generate a new one",
                    path.display()
                )));
            }
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes)
                .map_err(|e| io("cannot draw random bytes", std::io::Error::other(e)))?;
            let key: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            write_private(&path, &key).map_err(|e| io("cannot write the system key", e))?;
            Ok(key)
        }
        Err(e) => Err(io("cannot read the system key", e)),
    }
}

/// Reads the system key of `data_dir` if it exists.
pub fn read_system_key(data_dir: &Path) -> Option<String> {
    std::fs::read_to_string(system_key_path(data_dir))
        .ok()
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create_system_key(dir.path()).unwrap();
        let b = load_or_create_system_key(dir.path()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(read_system_key(dir.path()), Some(a));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(system_key_path(dir.path())).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
