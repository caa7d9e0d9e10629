//! Local-filesystem storage, the embedded default.
//!
//! Every file lands atomically: written to a hidden temporary name in the
//! target directory, fsynced, then renamed without replacing an existing
//! file. Modes follow gitaly-backup's filesystem sink: directories 0700,
//! files 0600.

use std::fmt;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{ByteReader, Key, ObjectMeta, Storage, StorageError, WriteMode};

/// Copy buffer between the body and the file: one 1 MiB buffer per put.
const COPY_BUFFER: usize = 1 << 20;

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

pub struct FsStorage {
    root: PathBuf,
}

impl FsStorage {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn path(&self, key: &Key) -> PathBuf {
        self.root.join(key.as_str())
    }
}

impl fmt::Display for FsStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.root.display())
    }
}

/// Removes a temporary file unless it was renamed into place, so an
/// interrupted or failed put leaves nothing behind.
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".gitbak.tmp")
}

fn create_dirs(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Renames `from` to `to`, failing with `AlreadyExists` if `to` exists.
fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        // Filesystems without RENAME_NOREPLACE: a hard link is just as exclusive.
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
            std::fs::hard_link(from, to)?;
            std::fs::remove_file(from)
        }
        Err(errno) => Err(errno.into()),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

fn meta_of(key: Key, metadata: &std::fs::Metadata) -> ObjectMeta {
    ObjectMeta {
        key,
        size: metadata.len(),
        modified: metadata.modified().unwrap_or(std::time::UNIX_EPOCH),
    }
}

#[async_trait]
impl Storage for FsStorage {
    async fn put(
        &self,
        key: &Key,
        mut body: ByteReader,
        mode: WriteMode,
    ) -> Result<ObjectMeta, StorageError> {
        let target = self.path(key);
        let dir = target.parent().unwrap_or(&self.root).to_path_buf();
        let name = target
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("object");
        let io_error = |error| StorageError::from_io(key.as_str(), error);
        if mode == WriteMode::CreateOnly && tokio::fs::symlink_metadata(&target).await.is_ok() {
            return Err(StorageError::AlreadyExists {
                key: key.to_string(),
            });
        }
        let dir_for_create = dir.clone();
        tokio::task::spawn_blocking(move || create_dirs(&dir_for_create))
            .await
            .map_err(|error| io_error(io::Error::other(error)))?
            .map_err(io_error)?;
        let counter = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let temp_path = dir.join(format!(
            ".{name}.{}-{counter}.gitbak.tmp",
            std::process::id()
        ));
        let mut guard = TempFile(Some(temp_path.clone()));
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp_path)
            .await
            .map_err(io_error)?;
        // Filled from the body before each write, so a pipe's small reads
        // become few large writes; not zeroed, so a small file costs little.
        let mut buffer = Vec::with_capacity(COPY_BUFFER);
        let mut size = 0u64;
        loop {
            buffer.clear();
            while buffer.len() < COPY_BUFFER {
                if body
                    .read_buf(&mut buffer)
                    .await
                    .map_err(StorageError::Source)?
                    == 0
                {
                    break;
                }
            }
            if buffer.is_empty() {
                break;
            }
            file.write_all(&buffer).await.map_err(io_error)?;
            size += buffer.len() as u64;
        }
        file.sync_all().await.map_err(io_error)?;
        drop(file);
        let (from, to) = (temp_path.clone(), target.clone());
        tokio::task::spawn_blocking(move || {
            match mode {
                WriteMode::CreateOnly => rename_no_replace(&from, &to)?,
                WriteMode::Overwrite => std::fs::rename(&from, &to)?,
            }
            sync_dir(to.parent().unwrap_or(Path::new("/")))
        })
        .await
        .map_err(|error| io_error(io::Error::other(error)))?
        .map_err(io_error)?;
        guard.0 = None;
        let metadata = tokio::fs::metadata(&target).await.map_err(io_error)?;
        debug_assert_eq!(metadata.len(), size);
        Ok(meta_of(key.clone(), &metadata))
    }

    async fn get(&self, key: &Key) -> Result<ByteReader, StorageError> {
        let file = tokio::fs::File::open(self.path(key))
            .await
            .map_err(|error| StorageError::from_io(key.as_str(), error))?;
        Ok(Box::pin(tokio::io::BufReader::with_capacity(
            COPY_BUFFER,
            file,
        )))
    }

    async fn head(&self, key: &Key) -> Result<Option<ObjectMeta>, StorageError> {
        match tokio::fs::metadata(self.path(key)).await {
            Ok(metadata) if metadata.is_file() => Ok(Some(meta_of(key.clone(), &metadata))),
            Ok(_) => Ok(None),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(StorageError::from_io(key.as_str(), error)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StorageError> {
        // Walk only the deepest directory the prefix names.
        let start_dir = match prefix.rfind('/') {
            Some(end) => prefix[..end].to_owned(),
            None => String::new(),
        };
        let root = self.root.clone();
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut found = Vec::new();
            walk(&root, &start_dir, &prefix, &mut found)?;
            Ok(found)
        })
        .await
        .map_err(|error| StorageError::Other {
            key: String::new(),
            message: error.to_string(),
        })?
    }

    async fn delete(&self, key: &Key) -> Result<(), StorageError> {
        match tokio::fs::remove_file(self.path(key)).await {
            Err(error) if error.kind() != io::ErrorKind::NotFound => {
                Err(StorageError::from_io(key.as_str(), error))
            }
            _ => Ok(()),
        }
    }
}

fn walk(
    root: &Path,
    dir_key: &str,
    prefix: &str,
    found: &mut Vec<ObjectMeta>,
) -> Result<(), StorageError> {
    let dir = if dir_key.is_empty() {
        root.to_path_buf()
    } else {
        root.join(dir_key)
    };
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(StorageError::from_io(dir_key, error)),
    };
    for entry in entries {
        let entry = entry.map_err(|error| StorageError::from_io(dir_key, error))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let key = if dir_key.is_empty() {
            name.clone()
        } else {
            format!("{dir_key}/{name}")
        };
        let file_type = entry
            .file_type()
            .map_err(|error| StorageError::from_io(&key, error))?;
        if file_type.is_dir() {
            if prefix.starts_with(&key)
                || key.starts_with(prefix)
                || prefix.starts_with(&format!("{key}/"))
            {
                walk(root, &key, prefix, found)?;
            }
        } else if file_type.is_file() && key.starts_with(prefix) && !is_temp_name(&name) {
            let metadata = entry
                .metadata()
                .map_err(|error| StorageError::from_io(&key, error))?;
            found.push(meta_of(Key::new(key)?, &metadata));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StorageExt;
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn put_is_create_only_atomic_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path().join("root"));
        let key = Key::new("a/b/c.bundle").unwrap();
        storage
            .put_bytes(&key, b"hello".to_vec(), WriteMode::CreateOnly)
            .await
            .unwrap();
        let again = storage
            .put_bytes(&key, b"other".to_vec(), WriteMode::CreateOnly)
            .await;
        assert!(matches!(again, Err(StorageError::AlreadyExists { .. })));
        assert_eq!(storage.get_bytes(&key).await.unwrap(), b"hello");
        let file_mode = std::fs::metadata(dir.path().join("root/a/b/c.bundle"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(file_mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(dir.path().join("root/a/b"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let names: Vec<_> = std::fs::read_dir(dir.path().join("root/a/b"))
            .unwrap()
            .collect();
        assert_eq!(names.len(), 1, "temporary files left behind");
    }

    #[tokio::test]
    async fn failed_body_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path().to_path_buf());
        let key = Key::new("x/y").unwrap();
        let failing = tokio::io::AsyncReadExt::chain(
            std::io::Cursor::new(b"partial".to_vec()),
            FailingReader,
        );
        let result = storage
            .put(&key, Box::pin(failing), WriteMode::CreateOnly)
            .await;
        assert!(matches!(result, Err(StorageError::Source(_))));
        assert!(storage.head(&key).await.unwrap().is_none());
        assert_eq!(std::fs::read_dir(dir.path().join("x")).unwrap().count(), 0);
    }

    struct FailingReader;
    impl tokio::io::AsyncRead for FailingReader {
        fn poll_read(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            _: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Err(io::Error::other("git died")))
        }
    }

    #[tokio::test]
    async fn list_by_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path().to_path_buf());
        for key in [
            "m/d/x.git/1.toml",
            "m/d/x.git/2.toml",
            "m/d/x.git2/1.toml",
            "m/e/y.git/1.toml",
        ] {
            storage
                .put_bytes(&Key::new(key).unwrap(), vec![], WriteMode::CreateOnly)
                .await
                .unwrap();
        }
        let mut keys: Vec<_> = storage
            .list("m/d/x.git/")
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.key.to_string())
            .collect();
        keys.sort();
        assert_eq!(keys, ["m/d/x.git/1.toml", "m/d/x.git/2.toml"]);
        assert_eq!(storage.list("m/").await.unwrap().len(), 4);
        assert_eq!(storage.list("nothing/").await.unwrap().len(), 0);
    }
}
