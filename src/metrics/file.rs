//! The metrics file on disk: read the previous one, write the new one
//! atomically, as node_exporter's textfile collector needs (it may read
//! the file at any moment and must never see half of it).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Why the metrics file was not written; the run's own outcome stands.
#[derive(Debug, thiserror::Error)]
pub enum MetricsFileError {
    #[error("metrics file {path}: {error}; check that its directory exists and is writable")]
    Io {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
}

/// The file's directory (`.` for a bare name).
fn directory(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Replaces `path` with `update(previous text)`, atomically: a temporary
/// file in the same directory (its name does not end in `.prom`, so the
/// collector skips it), fsynced, mode 0644 (node_exporter runs as another
/// user), renamed over `path`, the directory fsynced. Writers of the same
/// directory take turns (an exclusive lock on the directory), so a
/// restore and a verify ending together on one file both keep their
/// series.
pub fn update(path: &Path, update: impl FnOnce(&str) -> String) -> Result<(), MetricsFileError> {
    let fail = |error| MetricsFileError::Io {
        path: path.to_owned(),
        error,
    };
    let dir = directory(path);
    let dir_handle = File::open(dir).map_err(fail)?;
    rustix::fs::flock(&dir_handle, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|errno| fail(errno.into()))?;
    let previous = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        // Unreadable (not UTF-8, say): start afresh rather than never write again.
        Err(error) if error.kind() == std::io::ErrorKind::InvalidData => String::new(),
        Err(error) => return Err(fail(error)),
    };
    let text = update(&previous);
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = dir.join(crate::tempname::unique(&format!(".{name}")));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&temporary)?;
        // The umask may have taken read bits away; the collector needs them.
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        dir_handle.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written.map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_file_is_replaced_readable_by_all_and_no_temporary_stays() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gitbak.prom");
        update(&path, |previous| {
            assert_eq!(previous, "");
            "a 1\n".into()
        })
        .unwrap();
        update(&path, |previous| format!("{previous}b 2\n")).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a 1\nb 2\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_missing_directory_is_named() {
        let error = update(Path::new("/nonexistent/dir/gitbak.prom"), |_| String::new())
            .unwrap_err()
            .to_string();
        assert!(error.contains("/nonexistent/dir/gitbak.prom"), "{error}");
    }
}
