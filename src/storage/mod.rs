//! Where backups live: the `Storage` trait, keys, errors, and `open()`.
//!
//! Callers see only this module's types; each provider's SDK types stay in
//! its own file. The trait is small and object-safe; conveniences live in
//! `StorageExt`, which implementors never override.

pub mod azure;
pub mod digest;
mod fs;
pub mod gcs;
pub mod location;
pub mod memory;
mod prefixed;
mod s3;

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt};

pub(crate) use fs::blocking;
pub use fs::{FsStorage, LocalFiles, PendingFile, WriteBehind};
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
}

impl StorageError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
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
/// visible object); `list` returns every object whose key starts with
/// `prefix`, in no particular order; deleting a missing key is `Ok`.
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
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StorageError>;
    async fn delete(&self, key: &Key) -> Result<(), StorageError>;

    /// The objects as files in a local directory, where they are (the
    /// filesystem backend): git then reads and writes bundles directly.
    /// Keys and guarantees are the same as through the methods above.
    fn local_files(&self) -> Option<LocalFiles> {
        None
    }
}

/// Conveniences over any `Storage`.
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
}

impl<S: Storage + ?Sized> StorageExt for S {}

/// How uploads to object storage are cut and retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// First part size in bytes; parts grow as an upload grows.
    pub part_size: usize,
    /// Parts in flight per upload.
    pub upload_concurrency: usize,
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
