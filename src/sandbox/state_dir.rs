//! The sandbox's state directory: made and proven writable first, an earlier run's outbox and
//! webhooks set aside, the kubeconfig written whole or not at all.

use std::path::{Path, PathBuf};

use super::SandboxError;

/// Creates the state directory if needed and proves it writable, returning its absolute path
/// (the printed `export KUBECONFIG=...` must work from any directory).
pub fn prepare_state_dir(dir: &Path) -> Result<PathBuf, SandboxError> {
    let fail = |source| SandboxError::StateDir {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    let probe = dir.join(".write-test");
    std::fs::write(&probe, b"").map_err(fail)?;
    let _ = std::fs::remove_file(&probe);
    std::path::absolute(dir).map_err(fail)
}

/// Moves an earlier run's outbox (or webhooks directory) to `<name>.previous` (replacing an
/// older one), so this run's files start at `0001`. An empty directory is left where it is.
pub fn set_aside(outbox: &Path) -> Result<(), SandboxError> {
    let fail = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SandboxError::StateDir { path, source }
    };
    let holds_mail = match std::fs::read_dir(outbox) {
        Ok(mut entries) => entries.next().is_some(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => false,
        Err(err) => return Err(fail(outbox)(err)),
    };
    if !holds_mail {
        return Ok(());
    }
    let mut name = outbox.file_name().unwrap_or_default().to_os_string();
    name.push(".previous");
    let previous = outbox.with_file_name(name);
    match std::fs::remove_dir_all(&previous) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            return Err(fail(&previous)(err));
        }
        _ => {}
    }
    std::fs::rename(outbox, &previous).map_err(fail(outbox))
}

/// Removes a file an earlier run left, if there is one.
pub fn remove_stale(path: &Path) -> Result<(), SandboxError> {
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(SandboxError::StateDir {
            path: path.to_path_buf(),
            source: err,
        }),
        _ => Ok(()),
    }
}

/// Writes through a temporary file and a rename, so a reader never sees half a kubeconfig.
pub fn write_atomically(path: &Path, contents: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unwritable_state_dir_is_named() {
        let file = tempfile::NamedTempFile::new().unwrap();
        // A path under a regular file can never be a directory.
        let dir = file.path().join("state");
        let err = prepare_state_dir(&dir).unwrap_err().to_string();
        assert!(err.starts_with("--state-dir "), "{err}");
        assert!(err.contains(&dir.display().to_string()), "{err}");
    }

    #[test]
    fn an_earlier_outbox_is_set_aside_replacing_an_older_one() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = dir.path().join("outbox");
        let previous = dir.path().join("outbox.previous");
        set_aside(&outbox).unwrap();
        assert!(!outbox.exists() && !previous.exists());

        std::fs::create_dir_all(&previous).unwrap();
        std::fs::write(previous.join("0001-older.eml"), b"older").unwrap();
        std::fs::create_dir_all(&outbox).unwrap();
        set_aside(&outbox).unwrap();
        assert!(outbox.exists(), "an empty outbox stays");
        assert!(previous.join("0001-older.eml").exists());

        std::fs::write(outbox.join("0001-activation.eml"), b"last").unwrap();
        set_aside(&outbox).unwrap();
        assert!(!outbox.exists());
        let kept: Vec<_> = std::fs::read_dir(&previous)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(kept, ["0001-activation.eml"]);
    }

    #[test]
    fn the_webhooks_directory_is_set_aside_beside_the_outbox_not_over_it() {
        let dir = tempfile::tempdir().unwrap();
        for (name, file) in [
            ("outbox", "0001-activation.eml"),
            ("webhooks", "0001-provisioned.json"),
        ] {
            std::fs::create_dir_all(dir.path().join(name)).unwrap();
            std::fs::write(dir.path().join(name).join(file), b"kept").unwrap();
        }
        set_aside(&dir.path().join("outbox")).unwrap();
        set_aside(&dir.path().join("webhooks")).unwrap();
        assert!(
            dir.path()
                .join("outbox.previous/0001-activation.eml")
                .exists()
        );
        assert!(
            dir.path()
                .join("webhooks.previous/0001-provisioned.json")
                .exists()
        );
    }
}
