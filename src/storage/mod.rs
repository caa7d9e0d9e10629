//! Where backups live: the `Storage` trait, keys, errors, and `open()`.
//!
//! Callers see only this module's types; each provider's SDK types stay in
//! its own file. The trait is small and object-safe; conveniences live in
//! `StorageExt`, which implementors never override.

pub mod azure;
pub mod budget;
mod bulk;
pub mod digest;
mod fs;
pub mod gcs;
mod listing;
pub mod location;
pub mod memory;
mod prefixed;
mod s3;

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use futures::stream::{BoxStream, TryStreamExt};
use tokio::io::{AsyncRead, AsyncReadExt};

pub use budget::MemoryBudget;
pub use bulk::DELETE_CONCURRENCY;
pub(crate) use fs::blocking;
pub use fs::{Durable, FsStorage, LocalFiles, PendingFile, WriteBehind};
pub use listing::{DirEntry, DirListing};
pub use location::Location;
pub use memory::MemoryStorage;

/// A streamed body of unknown length.
pub type ByteReader = Pin<Box<dyn AsyncRead + Send>>;

/// A `/`-separated object key relative to the storage root. Never empty,
/// never starts with `/`, and has no empty, `.` or `..` segments, so it is
/// also a safe relative file path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(String);

impl Key {
    pub fn new(key: impl Into<String>) -> Result<Self, StorageError> {
        let key = key.into();
        let valid = !key.is_empty()
            && !key.contains('\0')
            && key
                .split('/')
                .all(|segment| !matches!(segment, "" | "." | ".."));
        if valid {
            Ok(Self(key))
        } else {
            Err(StorageError::InvalidKey { key })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether a put may replace an existing object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Fails with `AlreadyExists` if the key exists. Everything under a
    /// backup id is written this way.
    CreateOnly,
    /// Only for gitaly's rewritten `+latest.toml`.
    Overwrite,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: Key,
    pub size: u64,
    pub modified: SystemTime,
}

/// Errors the rest of the program can act on, each naming the key.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{key}: not found")]
    NotFound { key: String },
    #[error("{key}: already exists; gitbak never overwrites a backup file")]
    AlreadyExists { key: String },
    #[error("{key}: access denied: {message}")]
    AccessDenied { key: String, message: String },
    /// Timeouts, 5xx, throttling, connection resets: worth retrying.
    #[error("{key}: {message} (after retries)")]
    Transient { key: String, message: String },
    #[error("{key}: {message}")]
    Other { key: String, message: String },
    /// The data being uploaded could not be read (for a bundle: git failed).
    #[error("{0}")]
    Source(#[source] std::io::Error),
    #[error("invalid storage key {key:?}")]
    InvalidKey { key: String },
    /// The store refused a delete and the object shows a retention period
    /// or a legal hold: it stays until the lock ends, whatever gitbak does.
    #[error("{key}: kept by the store's {reason}; it can be deleted once that ends")]
    Locked { key: String, reason: String },
}

impl StorageError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// The same failure, reported for another key: one failed batch request
    /// fails each of its keys.
    pub(crate) fn for_key(&self, key: &str) -> Self {
        let key = key.to_owned();
        match self {
            Self::NotFound { .. } => Self::NotFound { key },
            Self::AlreadyExists { .. } => Self::AlreadyExists { key },
            Self::AccessDenied { message, .. } => Self::AccessDenied {
                key,
                message: message.clone(),
            },
            Self::Transient { message, .. } => Self::Transient {
                key,
                message: message.clone(),
            },
            Self::Locked { reason, .. } => Self::Locked {
                key,
                reason: reason.clone(),
            },
            Self::Other { message, .. } => Self::Other {
                key,
                message: message.clone(),
            },
            Self::Source(error) => Self::Other {
                key,
                message: error.to_string(),
            },
            Self::InvalidKey { .. } => Self::InvalidKey { key },
        }
    }

    /// A refusal worth asking the object about: it may be locked. Missing
    /// objects, conflicts and transient failures are not refusals.
    pub(crate) fn may_be_lock(&self) -> bool {
        matches!(self, Self::AccessDenied { .. } | Self::Other { .. })
    }

    pub(crate) fn from_io(key: &str, error: std::io::Error) -> Self {
        let key = key.to_owned();
        match error.kind() {
            std::io::ErrorKind::NotFound => Self::NotFound { key },
            std::io::ErrorKind::AlreadyExists => Self::AlreadyExists { key },
            std::io::ErrorKind::PermissionDenied => Self::AccessDenied {
                key,
                message: error.to_string(),
            },
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => Self::Other {
                key,
                message: format!(
                    "{error}: the backup location is full; free space there or pass another --path"
                ),
            },
            _ => Self::Other {
                key,
                message: error.to_string(),
            },
        }
    }
}

/// Contract: `put` is all-or-nothing (a failed or interrupted put leaves no
/// visible object); listings return every object whose key starts with
/// `prefix`, each once, in no particular order, page by page as the provider
/// serves them; deleting a missing key is `Ok`; a delete the store refuses
/// is `Locked` only when the object shows a retention period or legal hold.
///
/// Implementors write the required methods; the provided ones have a
/// generic default a provider overrides where it has a better call.
#[async_trait]
pub trait Storage: fmt::Display + Send + Sync {
    async fn put(
        &self,
        key: &Key,
        body: ByteReader,
        mode: WriteMode,
    ) -> Result<ObjectMeta, StorageError>;
    async fn get(&self, key: &Key) -> Result<ByteReader, StorageError>;
    /// `Ok(None)` when the key does not exist.
    async fn head(&self, key: &Key) -> Result<Option<ObjectMeta>, StorageError>;
    /// Every object under `prefix`, streamed: memory holds one page
    /// (`Tuning::list_page_size` keys), never the whole listing. An error
    /// ends the stream. The stream does not borrow `prefix`.
    fn list_stream<'a>(&'a self, prefix: &str) -> BoxStream<'a, Result<ObjectMeta, StorageError>>;
    async fn delete(&self, key: &Key) -> Result<(), StorageError>;

    /// One level under `prefix`: the objects whose key has no `/` after
    /// `prefix`, and each distinct sub-prefix (`prefix` + name + `/`) once,
    /// streamed like `list_stream`. A filesystem may also show a sub-prefix
    /// holding no object (an empty directory). The default filters the full
    /// listing; providers with a delimiter listing override it.
    fn list_dir_stream<'a>(
        &'a self,
        prefix: &str,
    ) -> BoxStream<'a, Result<DirEntry, StorageError>> {
        listing::one_level(self.list_stream(prefix), prefix.to_owned())
    }

    /// Deletes `keys`, returning one result per key in the same order.
    /// Missing keys are `Ok`. The default runs `DELETE_CONCURRENCY` single
    /// deletes at a time; providers with a batch call override it.
    async fn delete_many(&self, keys: &[Key]) -> Vec<Result<(), StorageError>> {
        bulk::delete_each(self, keys).await
    }

    /// Whether deleting frees space: on a versioned bucket a delete leaves
    /// the data as an older version (or behind a delete marker) until the
    /// bucket's lifecycle rules remove it.
    async fn versioning(&self) -> Result<Versioning, StorageError> {
        Ok(Versioning::Unknown)
    }

    /// The objects as files in a local directory, where they are (the
    /// filesystem backend): git then reads and writes bundles directly.
    /// Keys and guarantees are the same as through the methods above.
    fn local_files(&self) -> Option<LocalFiles> {
        None
    }
}

/// What a delete does to the data, as `Storage::versioning` finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versioning {
    /// Deletes free the space (filesystems, unversioned buckets).
    Off,
    /// Deletes leave versions or delete markers: nothing is freed until
    /// the bucket's lifecycle rules remove noncurrent versions.
    On,
    /// Versioning was on and is suspended: objects written while it was on
    /// keep their older versions.
    Suspended,
    /// The provider (or gitbak's permissions there) cannot tell.
    Unknown,
}

/// Conveniences over any `Storage`; implementors never override them.
#[async_trait]
pub trait StorageExt: Storage {
    async fn put_bytes(
        &self,
        key: &Key,
        bytes: Vec<u8>,
        mode: WriteMode,
    ) -> Result<ObjectMeta, StorageError> {
        self.put(key, Box::pin(std::io::Cursor::new(bytes)), mode)
            .await
    }

    /// Reads a whole small object (manifests, refs files).
    async fn get_bytes(&self, key: &Key) -> Result<Vec<u8>, StorageError> {
        let mut reader = self.get(key).await?;
        let mut bytes = Vec::new();
        reader
            .read_to_end(&mut bytes)
            .await
            .map_err(|error| StorageError::from_io(key.as_str(), error))?;
        Ok(bytes)
    }

    /// Every object under `prefix`, collected. For prefixes that may hold
    /// millions of keys, use `list_stream`.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StorageError> {
        self.list_stream(prefix).try_collect().await
    }

    /// One level under `prefix`, collected (see `list_dir_stream`).
    async fn list_dir(&self, prefix: &str) -> Result<DirListing, StorageError> {
        listing::collect_dir(self.list_dir_stream(prefix)).await
    }

    /// Reads many small objects (manifests), `concurrency` at a time, as
    /// they arrive: each key with its bytes or its error (`NotFound` if it
    /// went since it was listed). Memory: `concurrency` bodies in flight
    /// plus what the caller has not consumed yet.
    fn get_many_bytes<'a, I>(
        &'a self,
        keys: I,
        concurrency: usize,
    ) -> BoxStream<'a, (Key, Result<Vec<u8>, StorageError>)>
    where
        I: IntoIterator<Item = Key> + Send + 'a,
        I::IntoIter: Send + 'a,
    {
        bulk::get_many_bytes(self, keys, concurrency)
    }
}

impl<S: Storage + ?Sized> StorageExt for S {}

/// How uploads to object storage are cut and retried.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// First part size in bytes; parts grow as an upload grows, up to
    /// `upload_memory.largest_part()`.
    pub part_size: usize,
    /// Parts in flight per upload.
    pub upload_concurrency: usize,
    /// Every part buffer of every upload comes from here: one budget per
    /// process, shared by the clones of this `Tuning`.
    pub upload_memory: MemoryBudget,
    /// Attempts per request after the first, for transient errors.
    pub retries: u32,
    /// Write-once buckets: send checksums, never overwrite or delete.
    pub immutable: bool,
    /// Keys per list request (providers cap it at 1000 or 5000).
    pub list_page_size: u32,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            part_size: 16 << 20,
            upload_concurrency: 4,
            upload_memory: MemoryBudget::default(),
            retries: 5,
            immutable: false,
            list_page_size: 1000,
        }
    }
}

/// Opens the storage a location names.
pub async fn open(location: &Location, tuning: Tuning) -> Result<Arc<dyn Storage>, StorageError> {
    let storage: Arc<dyn Storage> = match location {
        Location::Filesystem(root) => Arc::new(FsStorage::new(root.clone())),
        Location::Gcs(gcs) => gcs::open(gcs, tuning).await?,
        Location::Azure(azure) => azure::open(azure, tuning).await?,
        Location::S3(s3) => s3::open(s3, tuning).await?,
    };
    Ok(match location.prefix() {
        "" => storage,
        prefix => Arc::new(prefixed::Prefixed::new(storage, prefix.to_owned())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_safe_relative_paths() {
        for bad in ["", "/a", "a//b", "a/../b", "./a", "a/", "a/."] {
            assert!(Key::new(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(Key::new("a/b.c").unwrap().as_str(), "a/b.c");
    }
}
