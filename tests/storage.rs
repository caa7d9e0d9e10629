//! The storage conformance suite: the same cases against every backend.
//!
//! Each backend's test builds its storage (emulator-backed for the cloud
//! providers) with a small part size and list page, and calls
//! `conformance`. A case an emulator cannot enforce is skipped by name with
//! a message, never passed silently.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use gitbak::storage::{Key, Storage, StorageError, StorageExt, Tuning, Versioning, WriteMode};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

/// Where `.ci/install-emulators.sh` installs the emulators.
pub(crate) fn emulators_dir() -> std::path::PathBuf {
    match std::env::var_os("GITBAK_EMULATORS") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::path::PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
            .join(".cache/gitbak-emulators"),
    }
}

/// What to run when an emulator is missing.
pub(crate) const INSTALL_HINT: &str = "run `bash .ci/install-emulators.sh`";

/// A port nobody listens on right now, for an emulator to bind.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Tuning for conformance runs: parts of 5 MiB (S3's minimum) and pages of
/// 10 keys, so multi-part uploads and pagination happen with little data.
pub fn small_tuning() -> Tuning {
    Tuning {
        part_size: 5 << 20,
        upload_concurrency: 2,
        retries: 2,
        immutable: false,
        list_page_size: 10,
        ..Tuning::default()
    }
}

/// Deterministic pseudo-random bytes (xorshift), incompressible enough.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// A body that yields `good` bytes, then fails as a dying git would.
struct FailingBody {
    good: io::Cursor<Vec<u8>>,
}

impl AsyncRead for FailingBody {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.good).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() == before => {
                Poll::Ready(Err(io::Error::other("git pack-objects died")))
            }
            other => other,
        }
    }
}

fn key(text: &str) -> Key {
    Key::new(text).unwrap()
}

/// Cases that an emulator does not enforce, named by the caller.
#[derive(Default, Clone, Copy)]
pub struct Unenforced {
    /// fake-gcs-server ignores `ifGenerationMatch=0` on resumable uploads.
    pub create_only_multipart: bool,
}

pub async fn conformance(storage: Arc<dyn Storage>, unenforced: Unenforced) {
    let name = storage.to_string();
    // Empty and small bodies.
    for (path, body) in [
        ("c/empty", Vec::new()),
        ("c/small", b"hello bundle".to_vec()),
    ] {
        let meta = storage
            .put_bytes(&key(path), body.clone(), WriteMode::CreateOnly)
            .await
            .unwrap();
        assert_eq!(meta.size, body.len() as u64, "{name}: size of {path}");
        assert_eq!(
            storage.get_bytes(&key(path)).await.unwrap(),
            body,
            "{name}: body of {path}"
        );
        let head = storage
            .head(&key(path))
            .await
            .unwrap()
            .expect("head finds the object");
        assert_eq!(head.size, body.len() as u64);
    }
    // A streamed body of several parts, read back as a stream.
    let big = pattern(12 << 20, 7);
    let meta = storage
        .put(
            &key("c/multi/part.bundle"),
            Box::pin(io::Cursor::new(big.clone())),
            WriteMode::CreateOnly,
        )
        .await
        .unwrap();
    assert_eq!(meta.size, big.len() as u64, "{name}: multipart size");
    let mut back = Vec::new();
    storage
        .get(&key("c/multi/part.bundle"))
        .await
        .unwrap()
        .read_to_end(&mut back)
        .await
        .unwrap();
    assert!(
        back == big,
        "{name}: multipart body differs ({} bytes back)",
        back.len()
    );
    // Create-only conflicts, small and multipart.
    let conflict = storage
        .put_bytes(&key("c/small"), b"other".to_vec(), WriteMode::CreateOnly)
        .await;
    assert!(
        matches!(conflict, Err(StorageError::AlreadyExists { .. })),
        "{name}: small overwrite: {conflict:?}"
    );
    assert_eq!(
        storage.get_bytes(&key("c/small")).await.unwrap(),
        b"hello bundle"
    );
    let conflict = storage
        .put(
            &key("c/multi/part.bundle"),
            Box::pin(io::Cursor::new(pattern(11 << 20, 9))),
            WriteMode::CreateOnly,
        )
        .await;
    if unenforced.create_only_multipart {
        eprintln!("{name}: SKIPPED create_only_multipart: the emulator does not enforce create-only on multi-part uploads");
    } else {
        assert!(
            matches!(conflict, Err(StorageError::AlreadyExists { .. })),
            "{name}: multipart overwrite: {conflict:?}"
        );
        let mut again = Vec::new();
        storage
            .get(&key("c/multi/part.bundle"))
            .await
            .unwrap()
            .read_to_end(&mut again)
            .await
            .unwrap();
        assert!(
            again == big,
            "{name}: a refused overwrite changed the object"
        );
    }
    // Overwrite is allowed where asked for (+latest.toml).
    storage
        .put_bytes(&key("c/small"), b"rewritten".to_vec(), WriteMode::Overwrite)
        .await
        .unwrap();
    assert_eq!(
        storage.get_bytes(&key("c/small")).await.unwrap(),
        b"rewritten"
    );
    // Listing across pages, by prefix only.
    for index in 0..25 {
        storage
            .put_bytes(
                &key(&format!("c/list/{index:02}")),
                vec![index],
                WriteMode::CreateOnly,
            )
            .await
            .unwrap();
    }
    storage
        .put_bytes(&key("c/list2/x"), vec![], WriteMode::CreateOnly)
        .await
        .unwrap();
    let mut listed: Vec<String> = storage
        .list("c/list/")
        .await
        .unwrap()
        .into_iter()
        .map(|meta| meta.key.to_string())
        .collect();
    listed.sort();
    let want: Vec<String> = (0..25).map(|index| format!("c/list/{index:02}")).collect();
    assert_eq!(listed, want, "{name}: listing");
    assert_eq!(storage.list("c/none/").await.unwrap().len(), 0);
    // Missing keys.
    assert!(
        matches!(
            storage.get(&key("c/missing")).await.err(),
            Some(StorageError::NotFound { .. })
        ),
        "{name}: get missing"
    );
    assert!(
        storage.head(&key("c/missing")).await.unwrap().is_none(),
        "{name}: head missing"
    );
    // Delete, and delete of a missing key.
    storage.delete(&key("c/empty")).await.unwrap();
    assert!(
        storage.head(&key("c/empty")).await.unwrap().is_none(),
        "{name}: deleted"
    );
    storage.delete(&key("c/empty")).await.unwrap();
    // An interrupted upload, small or multipart, leaves no visible object.
    for (path, len) in [("c/broken/small", 1000), ("c/broken/multi", 11 << 20)] {
        let body = FailingBody {
            good: io::Cursor::new(pattern(len, 3)),
        };
        let result = storage
            .put(&key(path), Box::pin(body), WriteMode::CreateOnly)
            .await;
        assert!(
            matches!(result, Err(StorageError::Source(_))),
            "{name}: {path}: {result:?}"
        );
        assert!(
            storage.head(&key(path)).await.unwrap().is_none(),
            "{name}: {path} visible after a failed upload"
        );
        assert!(
            storage.list("c/broken/").await.unwrap().is_empty(),
            "{name}: {path} listed after a failed upload"
        );
    }
}

#[tokio::test]
async fn filesystem_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let storage = gitbak::storage::open(
        &gitbak::storage::Location::Filesystem(dir.path().to_path_buf()),
        small_tuning(),
    )
    .await
    .unwrap();
    conformance(storage.clone(), Unenforced::default()).await;
    scale::at_scale(storage, Versioning::Off).await;
    // Deletes leave no empty directories behind (bulk/ held 1,005 files).
    assert!(
        !dir.path().join("bulk").exists(),
        "bulk/ is left as an empty directory"
    );
}

#[tokio::test]
async fn memory_conforms() {
    let storage: Arc<dyn Storage> = Arc::new(gitbak::storage::MemoryStorage::default());
    conformance(storage.clone(), Unenforced::default()).await;
    scale::at_scale(storage, Versioning::Off).await;
}

pub(crate) mod azure;
pub(crate) mod budget;
pub(crate) mod gcs;
pub(crate) mod s3;
pub(crate) mod s3_delete;
pub(crate) mod scale;
