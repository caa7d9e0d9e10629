//! Local-filesystem storage, the embedded default.
//!
//! Every file lands atomically: written to a hidden temporary name in the
//! target directory, fsynced, then renamed without replacing an existing
//! file. Modes follow gitaly-backup's filesystem sink: directories 0700,
//! files 0600.

mod durable;
mod walk;

use std::fmt;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use std::io::Write as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use self::durable::{sync_dir, Durability, SyncGroup};
use super::listing::objects_only;
use super::{ByteReader, DirEntry, Key, ObjectMeta, Storage, StorageError, Versioning, WriteMode};

/// Copy buffer between a large body and the file: one 1 MiB buffer per put.
const COPY_BUFFER: usize = 1 << 20;

/// Bodies up to this size (refs files, manifests, hooks) are read whole and
/// written in one blocking task: one thread hop instead of one per step, and
/// no large buffer to map and unmap.
const SMALL_BODY: usize = 64 << 10;

/// Writeback is started every this many bytes while a file is filled, so the
/// fsync that ends a put finds little left to write.
const WRITE_BACK_EVERY: u64 = 8 << 20;

/// How far writeback stays behind what has been written (a power of two).
const WRITE_BACK_LAG: u64 = 1 << 20;

pub struct FsStorage {
    files: LocalFiles,
}

impl FsStorage {
    pub fn new(root: PathBuf) -> Self {
        Self {
            files: LocalFiles {
                durability: Arc::new(SyncGroup::new(root.clone())),
                root,
            },
        }
    }
}

impl fmt::Display for FsStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.files.root.display())
    }
}

/// Objects kept as plain files under a local directory. Callers use it to
/// let git write or read a bundle's file itself: streaming the bytes through
/// gitbak instead costs a pipe, a copy and a wake-up per chunk, a third of
/// what git itself spends. Every method blocks; call them off the runtime.
#[derive(Debug, Clone)]
pub struct LocalFiles {
    root: PathBuf,
    /// Shared by every view of the same storage (`under`).
    durability: Arc<SyncGroup>,
}

impl LocalFiles {
    fn path(&self, key: &Key) -> PathBuf {
        self.root.join(key.as_str())
    }

    /// The same files seen through a `prefix=` ending in `/`.
    pub(crate) fn under(&self, prefix: &str) -> Option<Self> {
        let prefix = prefix.strip_suffix('/')?;
        let key = Key::new(prefix).ok()?;
        Some(Self {
            root: self.path(&key),
            durability: self.durability.clone(),
        })
    }

    /// Makes the bytes of `files` durable, for `PendingFile::publish`:
    /// one filesystem sync shared with every caller waiting at the same
    /// time where it covers them (see `durable`), else an fsync of each.
    pub fn make_durable(&self, files: &[&PendingFile]) -> Result<Durable, StorageError> {
        let key = files.first().map_or("", |file| file.key.as_str());
        let handles: Vec<&std::fs::File> = files.iter().map(|file| &file.file).collect();
        self.durability
            .make_durable(&handles)
            .map(Durable)
            .map_err(|error| StorageError::from_io(key, error))
    }

    /// Makes every file published so far durable under its name: before
    /// anything that says "these are all there" (the backup id marker).
    pub fn settle(&self) -> Result<(), StorageError> {
        self.durability
            .settle()
            .map_err(|error| StorageError::from_io(self.root.to_string_lossy().as_ref(), error))
    }

    /// The directory the objects live under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the object exists.
    pub fn exists(&self, key: &Key) -> Result<bool, StorageError> {
        match std::fs::metadata(self.path(key)) {
            Ok(metadata) => Ok(metadata.is_file()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(StorageError::from_io(key.as_str(), error)),
        }
    }

    /// Opens an object for reading.
    pub fn open(&self, key: &Key) -> Result<std::fs::File, StorageError> {
        std::fs::File::open(self.path(key))
            .map_err(|error| StorageError::from_io(key.as_str(), error))
    }

    /// Removes the temporary files that a gitbak of this host which no
    /// longer runs left in the directory `dir_key` (killed before it could
    /// commit or remove them). Others' are left alone: another host's, or a
    /// running process's. Returns how many went; a missing directory is 0.
    pub fn remove_stale_temporaries(&self, dir_key: &str) -> Result<usize, StorageError> {
        let dir = self.root.join(dir_key);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(error) => return Err(StorageError::from_io(dir_key, error)),
        };
        let mut removed = 0;
        for entry in entries {
            let entry = entry.map_err(|error| StorageError::from_io(dir_key, error))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let stale = temp_tag(name).is_some_and(|tag| tag.is_stale_here());
            if stale {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => removed += 1,
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                    Err(error) => return Err(StorageError::from_io(dir_key, error)),
                }
            }
        }
        Ok(removed)
    }

    /// Starts writing `key`: a hidden temporary file in the key's directory
    /// that only `PendingFile::commit` makes visible; dropped, it is removed.
    pub fn create(&self, key: &Key, mode: WriteMode) -> Result<PendingFile, StorageError> {
        let io_error = |error| StorageError::from_io(key.as_str(), error);
        let target = self.path(key);
        if mode == WriteMode::CreateOnly && std::fs::symlink_metadata(&target).is_ok() {
            return Err(StorageError::AlreadyExists {
                key: key.to_string(),
            });
        }
        let dir = target.parent().unwrap_or(&self.root);
        let name = target
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("object");
        // Tagged with host and pid, so a rerun can tell a dead run's
        // leftover from a file another run is writing right now.
        let temp_path = dir.join(format!(".{}{TEMP_SUFFIX}", crate::tempname::unique(name)));
        let mut attempts = 0;
        let file = loop {
            create_dirs(dir).map_err(io_error)?;
            // Readable too: a writer may hash what it wrote through a duplicate.
            let opened = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temp_path);
            match opened {
                // A delete emptied and removed the directory between the two
                // calls (`remove_empty_parents`); make it again.
                Err(error) if error.kind() == io::ErrorKind::NotFound && attempts < 3 => {
                    attempts += 1;
                }
                other => break other.map_err(io_error)?,
            }
        };
        Ok(PendingFile {
            file,
            temp: TempFile(Some(temp_path)),
            target,
            key: key.clone(),
            mode,
        })
    }
}

/// A file being written under a temporary name.
pub struct PendingFile {
    file: std::fs::File,
    temp: TempFile,
    target: PathBuf,
    key: Key,
    mode: WriteMode,
}

impl PendingFile {
    pub fn file(&self) -> &std::fs::File {
        &self.file
    }

    /// Makes the file visible under its key, durably: fsync, a rename that
    /// never replaces an existing object (unless `Overwrite`), and an fsync
    /// of the directory.
    pub fn commit(self) -> Result<ObjectMeta, StorageError> {
        self.file
            .sync_all()
            .map_err(|error| StorageError::from_io(self.key.as_str(), error))?;
        self.publish(Durable(Durability::PerFile))
    }

    /// Makes a file that `LocalFiles::make_durable` made durable visible
    /// under its key: the rename of `commit`, with the directory's fsync
    /// only where no shared sync will cover it.
    pub fn publish(mut self, durable: Durable) -> Result<ObjectMeta, StorageError> {
        let io_error = |error| StorageError::from_io(self.key.as_str(), error);
        let temp = self.temp.0.take().unwrap_or_default();
        let renamed = match self.mode {
            WriteMode::CreateOnly => rename_no_replace(&temp, &self.target),
            WriteMode::Overwrite => std::fs::rename(&temp, &self.target),
        };
        if let Err(error) = renamed {
            let _ = std::fs::remove_file(&temp);
            return Err(io_error(error));
        }
        if durable.0 == Durability::PerFile {
            sync_dir(self.target.parent().unwrap_or(Path::new("/"))).map_err(io_error)?;
        }
        let metadata = self.file.metadata().map_err(io_error)?;
        Ok(meta_of(self.key.clone(), &metadata))
    }
}

/// Proof that files were made durable, and how (`LocalFiles::make_durable`).
#[derive(Debug, Clone, Copy)]
pub struct Durable(Durability);

/// Starts writeback of a file that another process is still appending to,
/// as far as it is known to be written, so that the fsync ending the put
/// finds little left to do.
#[derive(Debug, Default)]
pub struct WriteBehind {
    started: u64,
}

impl WriteBehind {
    /// `written` bytes of `file` have landed. Whole MiBs behind that only:
    /// the writer may still be filling the last page, and a page under
    /// writeback can make its next write wait.
    pub fn advance(&mut self, file: &std::fs::File, written: u64) {
        let end = written.saturating_sub(WRITE_BACK_LAG) & !(WRITE_BACK_LAG - 1);
        if end >= self.started + WRITE_BACK_EVERY {
            start_write_back(file, self.started, end - self.started);
            self.started = end;
        }
    }
}

/// Asks the kernel to start writing `len` bytes at `offset` to disk without
/// waiting for it (best effort: an error only means the fsync does it all).
fn start_write_back(file: &std::fs::File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: the descriptor is open for the borrow's lifetime; the call
    // only schedules writeback of that file's pages.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
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

const TEMP_SUFFIX: &str = ".gitbak.tmp";

fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(TEMP_SUFFIX)
}

/// The tag of a temporary file's name (`.NAME~HOST~PID-N.gitbak.tmp`).
fn temp_tag(name: &str) -> Option<crate::tempname::Tag<'_>> {
    let inner = name.strip_prefix('.')?.strip_suffix(TEMP_SUFFIX)?;
    crate::tempname::parse(inner)
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

fn meta_of(key: Key, metadata: &std::fs::Metadata) -> ObjectMeta {
    ObjectMeta {
        key,
        size: metadata.len(),
        modified: metadata.modified().unwrap_or(std::time::UNIX_EPOCH),
    }
}

/// Runs blocking file work for `key` off the runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    key: &Key,
    work: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| StorageError::from_io(key.as_str(), io::Error::other(error)))?
}

/// Reads into `buffer` until it holds `limit` bytes or the body ends;
/// `true` at the end of the body.
async fn fill(
    buffer: &mut Vec<u8>,
    body: &mut ByteReader,
    limit: usize,
) -> Result<bool, StorageError> {
    while buffer.len() < limit {
        let room = limit - buffer.len();
        if body
            .as_mut()
            .take(room as u64)
            .read_buf(buffer)
            .await
            .map_err(StorageError::Source)?
            == 0
        {
            return Ok(true);
        }
    }
    Ok(false)
}

#[async_trait]
impl Storage for FsStorage {
    async fn put(
        &self,
        key: &Key,
        mut body: ByteReader,
        mode: WriteMode,
    ) -> Result<ObjectMeta, StorageError> {
        let io_error = |error| StorageError::from_io(key.as_str(), error);
        let mut buffer = Vec::with_capacity(SMALL_BODY);
        let ended = fill(&mut buffer, &mut body, SMALL_BODY).await?;
        let (files, owned_key) = (self.files.clone(), key.clone());
        if ended {
            return blocking(key, move || {
                let pending = files.create(&owned_key, mode)?;
                (&pending.file)
                    .write_all(&buffer)
                    .map_err(|error| StorageError::from_io(owned_key.as_str(), error))?;
                pending.commit()
            })
            .await;
        }
        let pending = blocking(key, move || files.create(&owned_key, mode)).await?;
        let mut file = tokio::fs::File::from_std(pending.file.try_clone().map_err(io_error)?);
        buffer.reserve(COPY_BUFFER - buffer.len());
        loop {
            file.write_all(&buffer).await.map_err(io_error)?;
            buffer.clear();
            let ended = fill(&mut buffer, &mut body, COPY_BUFFER).await?;
            if ended && buffer.is_empty() {
                break;
            }
        }
        // Waits for the last write, which tokio runs in the background.
        file.flush().await.map_err(io_error)?;
        drop(file);
        blocking(key, move || pending.commit()).await
    }

    fn local_files(&self) -> Option<LocalFiles> {
        Some(self.files.clone())
    }

    async fn get(&self, key: &Key) -> Result<ByteReader, StorageError> {
        let path = self.files.path(key);
        let owned_key = key.clone();
        // Small objects (manifests, refs files) are read whole in the same
        // trip to the blocking pool that opens them: one trip, and no
        // 1 MiB buffer, per manifest read.
        let opened = blocking(key, move || {
            use std::io::Read as _;
            let io_error = |error| StorageError::from_io(owned_key.as_str(), error);
            let mut file = std::fs::File::open(&path).map_err(io_error)?;
            let size = file.metadata().map_err(io_error)?.len();
            if size > SMALL_BODY as u64 {
                return Ok(Err(file));
            }
            let mut bytes = Vec::with_capacity(size as usize + 1);
            file.read_to_end(&mut bytes).map_err(io_error)?;
            Ok(Ok(bytes))
        })
        .await?;
        Ok(match opened {
            Ok(bytes) => Box::pin(std::io::Cursor::new(bytes)),
            Err(file) => Box::pin(tokio::io::BufReader::with_capacity(
                COPY_BUFFER,
                tokio::fs::File::from_std(file),
            )),
        })
    }

    async fn head(&self, key: &Key) -> Result<Option<ObjectMeta>, StorageError> {
        match tokio::fs::metadata(self.files.path(key)).await {
            Ok(metadata) if metadata.is_file() => Ok(Some(meta_of(key.clone(), &metadata))),
            Ok(_) => Ok(None),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(StorageError::from_io(key.as_str(), error)),
        }
    }

    fn list_stream<'a>(&'a self, prefix: &str) -> BoxStream<'a, Result<ObjectMeta, StorageError>> {
        objects_only(walk::entries(self.files.root.clone(), prefix, true))
    }

    fn list_dir_stream<'a>(
        &'a self,
        prefix: &str,
    ) -> BoxStream<'a, Result<DirEntry, StorageError>> {
        walk::entries(self.files.root.clone(), prefix, false)
    }

    async fn delete(&self, key: &Key) -> Result<(), StorageError> {
        let files = self.files.clone();
        let owned = key.clone();
        blocking(key, move || files.remove(&owned)).await
    }

    /// One blocking task for the whole batch: unlinking is quick, thread
    /// hops per key would cost more than the work.
    async fn delete_many(&self, keys: &[Key]) -> Vec<Result<(), StorageError>> {
        let files = self.files.clone();
        let owned = keys.to_vec();
        let removed = tokio::task::spawn_blocking(move || {
            owned
                .iter()
                .map(|key| files.remove(key))
                .collect::<Vec<_>>()
        })
        .await;
        removed.unwrap_or_else(|join| {
            let error = StorageError::from_io("", io::Error::other(join));
            keys.iter()
                .map(|key| Err(error.for_key(key.as_str())))
                .collect()
        })
    }

    async fn versioning(&self) -> Result<Versioning, StorageError> {
        Ok(Versioning::Off)
    }
}

impl LocalFiles {
    /// Removes a file (a missing one is fine) and then the directories it
    /// leaves empty, up to the root, so a pruned store holds no empty
    /// directory trees. A directory some other writer has just filled
    /// stays: `rmdir` only removes empty ones, and `create` remakes one
    /// removed under it.
    fn remove(&self, key: &Key) -> Result<(), StorageError> {
        let path = self.path(key);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(StorageError::from_io(key.as_str(), error)),
        }
        let mut dir = path.parent();
        while let Some(current) = dir.filter(|dir| *dir != self.root && dir.starts_with(&self.root))
        {
            if std::fs::remove_dir(current).is_err() {
                break; // not empty (or not ours to remove): done
            }
            dir = current.parent();
        }
        Ok(())
    }
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
        // A small body fails before any file exists; a larger one streams
        // into a temporary file first.
        for before_failing in [7, 3 * SMALL_BODY] {
            let failing = tokio::io::AsyncReadExt::chain(
                std::io::Cursor::new(vec![7u8; before_failing]),
                FailingReader,
            );
            let result = storage
                .put(&key, Box::pin(failing), WriteMode::CreateOnly)
                .await;
            assert!(matches!(result, Err(StorageError::Source(_))));
            assert!(storage.head(&key).await.unwrap().is_none());
            let left = std::fs::read_dir(dir.path().join("x")).map_or(0, |entries| entries.count());
            assert_eq!(
                left, 0,
                "a failed put of {before_failing} bytes left a file"
            );
        }
    }

    #[tokio::test]
    async fn large_bodies_stream_whole() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path().to_path_buf());
        let key = Key::new("big/body").unwrap();
        let body: Vec<u8> = (0..COPY_BUFFER * 2 + 12345)
            .map(|i| (i % 251) as u8)
            .collect();
        let meta = storage
            .put_bytes(&key, body.clone(), WriteMode::CreateOnly)
            .await
            .unwrap();
        assert_eq!(meta.size, body.len() as u64);
        assert_eq!(storage.get_bytes(&key).await.unwrap(), body);
    }

    #[test]
    fn writeback_starts_in_whole_mibs_behind_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::File::create(dir.path().join("f")).unwrap();
        let mib = 1 << 20;
        let mut behind = WriteBehind::default();
        behind.advance(&file, 8 * mib);
        assert_eq!(behind.started, 0, "7 MiB behind is less than one step");
        behind.advance(&file, 9 * mib + 5);
        assert_eq!(behind.started, 8 * mib);
        behind.advance(&file, 12 * mib);
        assert_eq!(behind.started, 8 * mib, "waits for the next 8 MiB");
        behind.advance(&file, 17 * mib + 4095);
        assert_eq!(behind.started, 16 * mib);
    }

    #[tokio::test]
    async fn prefixes_that_are_directories_stay_local() {
        let files = FsStorage::new(PathBuf::from("/b")).local_files().unwrap();
        let under = files.under("team/x/").unwrap();
        assert_eq!(
            under.path(&Key::new("k").unwrap()),
            Path::new("/b/team/x/k")
        );
        assert!(files.under("backup-").is_none());
        assert!(files.under("../").is_none());
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

#[cfg(test)]
mod leftover_tests {
    use super::*;

    #[test]
    fn only_dead_local_leftovers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let files = FsStorage::new(dir.path().to_path_buf())
            .local_files()
            .unwrap();
        let step = dir.path().join("default/a.git/1");
        std::fs::create_dir_all(&step).unwrap();
        let host = crate::tempname::host();
        let dead = format!(".001.bundle~{host}~4194304999-3.gitbak.tmp");
        let elsewhere = ".001.refs~another-host~4194304999-3.gitbak.tmp";
        let ours = format!(
            ".001.custom_hooks.tar{}",
            &format!("~{host}~{}-9.gitbak.tmp", std::process::id())
        );
        for name in [dead.as_str(), elsewhere, &ours, "001.refs"] {
            std::fs::write(step.join(name), "x").unwrap();
        }
        assert_eq!(
            files.remove_stale_temporaries("default/a.git/1").unwrap(),
            1
        );
        assert!(!step.join(&dead).exists());
        for kept in [elsewhere, &ours, "001.refs"] {
            assert!(step.join(kept).exists(), "{kept} must stay");
        }
        assert_eq!(files.remove_stale_temporaries("nothing/here").unwrap(), 0);
        // A pending file is named so that a sweep recognises it.
        let pending = files
            .create(
                &Key::new("default/a.git/1/002.bundle").unwrap(),
                WriteMode::CreateOnly,
            )
            .unwrap();
        let name = pending
            .temp
            .0
            .as_ref()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let tag = temp_tag(&name).unwrap();
        assert_eq!((tag.name, tag.pid), ("002.bundle", std::process::id()));
    }
}
