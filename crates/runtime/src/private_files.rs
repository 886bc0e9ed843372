//! Files only their owner may read: keys, the development outbox, saved client settings.
//! One place for the permission rule, so no caller forgets it on some path.

use std::io::Write;
use std::path::Path;

/// Open options that create files readable and writable by the owner only (mode `0600` on
/// Unix; other platforms keep their default ACLs). Callers add `write`/`append`/`create…`.
pub fn private_open_options() -> std::fs::OpenOptions {
    #[allow(unused_mut)] // only Unix sets a mode
    let mut options = std::fs::OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

/// Writes `contents` to a new file at `path` that only its owner can read, and syncs it.
/// Fails if the file exists: a key is never overwritten.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut file = private_open_options().write(true).create_new(true).open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_file_is_new_and_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        write_private(&path, "k").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "k");
        assert!(write_private(&path, "other").is_err(), "an existing file is never overwritten");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}
