//! In-memory storage for unit tests of logic; never stands in for a real
//! backend in integration tests.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::time::SystemTime;

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};
use tokio::io::AsyncReadExt;

use super::{ByteReader, Key, ObjectMeta, Storage, StorageError, Versioning, WriteMode};

#[derive(Default)]
pub struct MemoryStorage {
    objects: Mutex<BTreeMap<Key, (Vec<u8>, SystemTime)>>,
}

impl fmt::Display for MemoryStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("mem://")
    }
}

impl MemoryStorage {
    fn objects(&self) -> std::sync::MutexGuard<'_, BTreeMap<Key, (Vec<u8>, SystemTime)>> {
        self.objects
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl Storage for MemoryStorage {
    async fn put(
        &self,
        key: &Key,
        mut body: ByteReader,
        mode: WriteMode,
    ) -> Result<ObjectMeta, StorageError> {
        let mut bytes = Vec::new();
        body.read_to_end(&mut bytes)
            .await
            .map_err(StorageError::Source)?;
        let mut objects = self.objects();
        if mode == WriteMode::CreateOnly && objects.contains_key(key) {
            return Err(StorageError::AlreadyExists {
                key: key.to_string(),
            });
        }
        let modified = SystemTime::now();
        let size = bytes.len() as u64;
        objects.insert(key.clone(), (bytes, modified));
        Ok(ObjectMeta {
            key: key.clone(),
            size,
            modified,
        })
    }

    async fn get(&self, key: &Key) -> Result<ByteReader, StorageError> {
        let bytes = self.objects().get(key).map(|(bytes, _)| bytes.clone());
        let bytes = bytes.ok_or_else(|| StorageError::NotFound {
            key: key.to_string(),
        })?;
        Ok(Box::pin(std::io::Cursor::new(bytes)))
    }

    async fn head(&self, key: &Key) -> Result<Option<ObjectMeta>, StorageError> {
        Ok(self.objects().get(key).map(|(bytes, modified)| ObjectMeta {
            key: key.clone(),
            size: bytes.len() as u64,
            modified: *modified,
        }))
    }

    /// A snapshot taken at the call: the objects are in memory already.
    fn list_stream<'a>(&'a self, prefix: &str) -> BoxStream<'a, Result<ObjectMeta, StorageError>> {
        let found: Vec<_> = self
            .objects()
            .iter()
            .filter(|(key, _)| key.as_str().starts_with(prefix))
            .map(|(key, (bytes, modified))| {
                Ok(ObjectMeta {
                    key: key.clone(),
                    size: bytes.len() as u64,
                    modified: *modified,
                })
            })
            .collect();
        stream::iter(found).boxed()
    }

    async fn versioning(&self) -> Result<Versioning, StorageError> {
        Ok(Versioning::Off)
    }

    async fn delete(&self, key: &Key) -> Result<(), StorageError> {
        self.objects().remove(key);
        Ok(())
    }
}
