//! The `prefix=` location parameter: every key gets the prefix, listings
//! drop it again, so the rest of gitbak never sees it.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use super::{ByteReader, Key, LocalFiles, ObjectMeta, Storage, StorageError, WriteMode};

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

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StorageError> {
        let found = self.inner.list(&format!("{}{prefix}", self.prefix)).await?;
        found
            .into_iter()
            .map(|mut meta| {
                meta.key = Key::new(meta.key.as_str()[self.prefix.len()..].to_owned())?;
                Ok(meta)
            })
            .collect()
    }

    async fn delete(&self, key: &Key) -> Result<(), StorageError> {
        self.inner.delete(&self.full(key)?).await
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
