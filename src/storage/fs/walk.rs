//! Listing the filesystem store without holding the tree: a depth-first
//! walk that reads at most `BATCH` directory entries per blocking call, so
//! a listing of millions of files streams like a paged cloud listing.
//! Memory: one batch plus the directories still to visit.

use std::io;
use std::path::PathBuf;

use futures::stream::{self, BoxStream, StreamExt};

use super::{is_temp_name, meta_of};
use crate::storage::{DirEntry, Key, StorageError};

/// Directory entries read per blocking call (each costs one `stat`).
const BATCH: usize = 1000;

/// The walk's position: the directory being read and those still to read.
struct Walk {
    root: PathBuf,
    prefix: String,
    /// `false`: the prefix's own directory only, sub-directories as prefixes.
    recursive: bool,
    reading: Option<(String, std::fs::ReadDir)>,
    pending: Vec<String>,
}

/// Every file under `prefix`, as `DirEntry::Object`s; or, one level only,
/// also each matching sub-directory as a `DirEntry::Prefix`.
pub(super) fn entries(
    root: PathBuf,
    prefix: &str,
    recursive: bool,
) -> BoxStream<'static, Result<DirEntry, StorageError>> {
    // Only the deepest directory the prefix names can hold matches.
    let start = prefix.rfind('/').map_or("", |end| &prefix[..end]);
    let walk = Walk {
        root,
        prefix: prefix.to_owned(),
        recursive,
        reading: None,
        pending: vec![start.to_owned()],
    };
    stream::unfold(Some(walk), |walk| async move {
        let mut walk = walk?;
        let stepped = tokio::task::spawn_blocking(move || {
            let batch = walk.step();
            (walk, batch)
        })
        .await;
        match stepped {
            Ok((walk, Ok(Some(batch)))) => Some((batch.into_iter().map(Ok).collect(), Some(walk))),
            Ok((_, Ok(None))) => None,
            Ok((_, Err(error))) => Some((vec![Err(error)], None)),
            Err(join) => Some((
                vec![Err(StorageError::from_io("", io::Error::other(join)))],
                None,
            )),
        }
    })
    .flat_map(stream::iter)
    .boxed()
}

impl Walk {
    /// The next non-empty batch of entries, `None` when the walk is done.
    fn step(&mut self) -> Result<Option<Vec<DirEntry>>, StorageError> {
        loop {
            let (dir_key, reader) = match self.reading.take() {
                Some(reading) => reading,
                None => {
                    let Some(dir_key) = self.pending.pop() else {
                        return Ok(None);
                    };
                    let dir = if dir_key.is_empty() {
                        self.root.clone()
                    } else {
                        self.root.join(&dir_key)
                    };
                    match std::fs::read_dir(&dir) {
                        Ok(reader) => (dir_key, reader),
                        // Gone meanwhile, or the prefix names a file: nothing under it.
                        Err(error)
                            if matches!(
                                error.kind(),
                                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                            ) =>
                        {
                            continue
                        }
                        Err(error) => return Err(StorageError::from_io(&dir_key, error)),
                    }
                }
            };
            let mut reader = reader;
            let mut batch = Vec::new();
            let mut read = 0;
            for entry in reader.by_ref().take(BATCH) {
                read += 1;
                let entry = entry.map_err(|error| StorageError::from_io(&dir_key, error))?;
                if let Some(found) = self.found(&dir_key, &entry)? {
                    batch.push(found);
                }
            }
            if read == BATCH {
                self.reading = Some((dir_key, reader));
            }
            if !batch.is_empty() {
                return Ok(Some(batch));
            }
        }
    }

    /// What one directory entry contributes: a file, a sub-prefix, or a
    /// directory queued for later.
    fn found(
        &mut self,
        dir_key: &str,
        entry: &std::fs::DirEntry,
    ) -> Result<Option<DirEntry>, StorageError> {
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            return Ok(None); // not UTF-8: no key gitbak writes
        };
        let key = if dir_key.is_empty() {
            name.clone()
        } else {
            format!("{dir_key}/{name}")
        };
        if !key.starts_with(&self.prefix) {
            return Ok(None);
        }
        let file_type = entry
            .file_type()
            .map_err(|error| StorageError::from_io(&key, error))?;
        if file_type.is_dir() {
            if self.recursive {
                self.pending.push(key);
                return Ok(None);
            }
            return Ok(Some(DirEntry::Prefix(format!("{key}/"))));
        }
        if !file_type.is_file() || is_temp_name(&name) {
            return Ok(None);
        }
        let metadata = match entry.metadata() {
            Ok(metadata) => metadata,
            // Deleted between reading the directory and asking about it.
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(StorageError::from_io(&key, error)),
        };
        Ok(Some(DirEntry::Object(meta_of(Key::new(key)?, &metadata))))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // allowed in tests (style.md)
mod tests {
    use super::*;
    use futures::TryStreamExt;

    fn touch(root: &std::path::Path, key: &str) {
        let path = root.join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, key).unwrap();
    }

    async fn keys(root: &std::path::Path, prefix: &str, recursive: bool) -> Vec<String> {
        let mut found: Vec<String> = entries(root.to_path_buf(), prefix, recursive)
            .map_ok(|entry| match entry {
                DirEntry::Object(meta) => meta.key.to_string(),
                DirEntry::Prefix(prefix) => prefix,
            })
            .try_collect()
            .await
            .unwrap();
        found.sort();
        found
    }

    #[tokio::test]
    async fn walks_in_batches_and_skips_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let many = BATCH * 2 + 7;
        for index in 0..many {
            touch(dir.path(), &format!("big/{index:05}"));
        }
        touch(dir.path(), "big/.x~host~1-1.gitbak.tmp");
        touch(dir.path(), "big/sub/deeper/file");
        touch(dir.path(), "bigger/file");
        let found = keys(dir.path(), "big/", true).await;
        assert_eq!(found.len(), many + 1);
        assert!(found.contains(&"big/sub/deeper/file".to_owned()));
        assert_eq!(keys(dir.path(), "big", true).await.len(), many + 2);
        assert!(keys(dir.path(), "nothing/", true).await.is_empty());
        assert!(keys(dir.path(), "bigger/file/", true).await.is_empty());
    }

    #[tokio::test]
    async fn one_level_names_sub_directories() {
        let dir = tempfile::tempdir().unwrap();
        for key in ["m/a.toml", "m/x/1", "m/x/2", "m/y/z/3", "mm/4"] {
            touch(dir.path(), key);
        }
        assert_eq!(
            keys(dir.path(), "m/", false).await,
            ["m/a.toml", "m/x/", "m/y/"]
        );
        assert_eq!(keys(dir.path(), "m", false).await, ["m/", "mm/"]);
        assert_eq!(keys(dir.path(), "", false).await, ["m/", "mm/"]);
    }
}
