//! The `prefix=` location parameter: every key gets the prefix, listings
//! drop it again, so the rest of gitbak never sees it.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};

use super::{
    ByteReader, DirEntry, Key, LocalFiles, ObjectMeta, Storage, StorageError, Versioning, WriteMode,
};

pub struct Prefixed {
    inner: Arc<dyn Storage>,
    prefix: String,
}

impl Prefixed {
    pub fn new(inner: Arc<dyn Storage>, prefix: String) -> Self {
        Self { inner, prefix }
    }

    fn full(&self, key: &Key) -> Result<Key, StorageError> {
        Key::new(format!("{}{}", self.prefix, key.as_str()))
    }

    /// A listed key without the prefix (the inner listing had it).
    fn strip(&self, mut meta: ObjectMeta) -> Result<ObjectMeta, StorageError> {
        meta.key = Key::new(meta.key.as_str()[self.prefix.len()..].to_owned())?;
        Ok(meta)
    }
}

impl fmt::Display for Prefixed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (prefix {})", self.inner, self.prefix)
    }
}

#[async_trait]
impl Storage for Prefixed {
    async fn put(
        &self,
        key: &Key,
        body: ByteReader,
        mode: WriteMode,
    ) -> Result<ObjectMeta, StorageError> {
        let mut meta = self.inner.put(&self.full(key)?, body, mode).await?;
        meta.key = key.clone();
        Ok(meta)
    }

    async fn get(&self, key: &Key) -> Result<ByteReader, StorageError> {
        self.inner.get(&self.full(key)?).await
    }

    async fn head(&self, key: &Key) -> Result<Option<ObjectMeta>, StorageError> {
        Ok(self.inner.head(&self.full(key)?).await?.map(|mut meta| {
            meta.key = key.clone();
            meta
        }))
    }

    fn list_stream<'a>(&'a self, prefix: &str) -> BoxStream<'a, Result<ObjectMeta, StorageError>> {
        self.inner
            .list_stream(&format!("{}{prefix}", self.prefix))
            .and_then(|meta| futures::future::ready(self.strip(meta)))
            .boxed()
    }

    fn list_dir_stream<'a>(
        &'a self,
        prefix: &str,
    ) -> BoxStream<'a, Result<DirEntry, StorageError>> {
        self.inner
            .list_dir_stream(&format!("{}{prefix}", self.prefix))
            .and_then(|entry| {
                futures::future::ready(match entry {
                    DirEntry::Object(meta) => self.strip(meta).map(DirEntry::Object),
                    DirEntry::Prefix(sub) => Ok(DirEntry::Prefix(
                        sub.strip_prefix(&self.prefix).unwrap_or(&sub).to_owned(),
                    )),
                })
            })
            .boxed()
    }

    async fn delete(&self, key: &Key) -> Result<(), StorageError> {
        self.inner.delete(&self.full(key)?).await
    }

    /// Errors name the full object names, which is what an admin looks for
    /// in the bucket.
    async fn delete_many(&self, keys: &[Key]) -> Vec<Result<(), StorageError>> {
        let full: Result<Vec<Key>, StorageError> = keys.iter().map(|key| self.full(key)).collect();
        match full {
            Ok(full) => self.inner.delete_many(&full).await,
            Err(error) => keys
                .iter()
                .map(|key| Err(error.for_key(key.as_str())))
                .collect(),
        }
    }

    async fn versioning(&self) -> Result<Versioning, StorageError> {
        self.inner.versioning().await
    }

    /// A prefix that is a directory keeps local files local; any other
    /// (`prefix=backup-`) goes through the streaming methods.
    fn local_files(&self) -> Option<LocalFiles> {
        self.inner.local_files()?.under(&self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{MemoryStorage, StorageExt};

    #[tokio::test]
    async fn keys_are_prefixed_and_listings_are_not() {
        let storage = Prefixed::new(Arc::new(MemoryStorage::default()), "team/gitaly/".into());
        let key = Key::new("manifests/a.toml").unwrap();
        storage
            .put_bytes(&key, b"x".to_vec(), WriteMode::CreateOnly)
            .await
            .unwrap();
        assert!(storage
            .inner
            .head(&Key::new("team/gitaly/manifests/a.toml").unwrap())
            .await
            .unwrap()
            .is_some());
        let listed = storage.list("manifests/").await.unwrap();
        assert_eq!(listed[0].key, key);
        assert_eq!(storage.get_bytes(&key).await.unwrap(), b"x");
    }
}
