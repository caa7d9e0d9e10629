//! SHA-256 of bodies as they stream through: recorded on upload, checked on
//! download.
//!
//! Pure stream adapters; they know nothing of keys or providers beyond the
//! name they put in an error.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, ReadBuf};

#[derive(Default)]
struct DigestState {
    hasher: Sha256,
    size: u64,
}

/// Hashes what is read through it; `DigestHandle::finish` gives the result.
pub struct DigestReader<R> {
    inner: R,
    state: Arc<Mutex<DigestState>>,
}

#[derive(Clone)]
pub struct DigestHandle(Arc<Mutex<DigestState>>);

/// Size and lowercase hex SHA-256 of a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyDigest {
    pub size: u64,
    pub sha256: String,
}

/// Digest of bytes already in memory.
pub fn digest_of(bytes: &[u8]) -> BodyDigest {
    BodyDigest {
        size: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(bytes)),
    }
}

impl<R> DigestReader<R> {
    pub fn new(inner: R) -> (Self, DigestHandle) {
        let state = Arc::new(Mutex::new(DigestState::default()));
        (
            Self {
                inner,
                state: state.clone(),
            },
            DigestHandle(state),
        )
    }
}

fn lock(state: &Mutex<DigestState>) -> std::sync::MutexGuard<'_, DigestState> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl DigestHandle {
    pub fn finish(&self) -> BodyDigest {
        let state = lock(&self.0);
        BodyDigest {
            size: state.size,
            sha256: hex::encode(state.hasher.clone().finalize()),
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for DigestReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &result {
            let fresh = &buf.filled()[before..];
            let mut state = lock(&self.state);
            state.hasher.update(fresh);
            state.size += fresh.len() as u64;
        }
        result
    }
}

/// Passes bytes through and fails at end of stream unless they match the
/// expected digest, so a consumer never mistakes a corrupt body for a
/// complete one.
pub struct VerifyingReader<R> {
    inner: R,
    name: String,
    expected: BodyDigest,
    hasher: Sha256,
    size: u64,
}

impl<R> VerifyingReader<R> {
    pub fn new(inner: R, name: impl Into<String>, expected: BodyDigest) -> Self {
        Self {
            inner,
            name: name.into(),
            expected,
            hasher: Sha256::new(),
            size: 0,
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for VerifyingReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let fresh = &buf.filled()[before..];
                if fresh.is_empty() && buf.remaining() > 0 {
                    let actual = BodyDigest {
                        size: this.size,
                        sha256: hex::encode(this.hasher.clone().finalize()),
                    };
                    if actual != this.expected {
                        return Poll::Ready(Err(mismatch(&this.name, &this.expected, &actual)));
                    }
                } else {
                    this.hasher.update(fresh);
                    this.size += fresh.len() as u64;
                }
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

/// Read sizes for hashing a local file. Most files are small, so reads start
/// small (a large zeroed buffer costs more than hashing a small bundle) and
/// grow once a read fills the buffer; the largest stays under glibc's 1 MiB
/// mmap threshold.
const FILE_CHUNK_FIRST: usize = 16 << 10;
const FILE_CHUNK: usize = 512 << 10;

/// Size and SHA-256 of a local file that another process may still be
/// writing. Positioned reads leave the descriptor's offset alone (git may be
/// appending through a duplicate). At the end of the data it waits for more
/// until `finished()`, checked before each read, says the writer is done;
/// each hashed range is reported to `hashed(offset, len)`. Blocks.
pub fn digest_file(
    file: &std::fs::File,
    finished: impl Fn() -> bool,
    mut hashed: impl FnMut(u64, u64),
) -> io::Result<BodyDigest> {
    use std::os::unix::fs::FileExt;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; FILE_CHUNK_FIRST];
    let mut offset = 0u64;
    loop {
        let writer_done = finished();
        let read = match file.read_at(&mut buffer, offset) {
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if read > 0 {
            hasher.update(&buffer[..read]);
            if read == buffer.len() && buffer.len() < FILE_CHUNK {
                buffer.resize(FILE_CHUNK, 0);
            }
            hashed(offset, read as u64);
            offset += read as u64;
        } else if writer_done {
            break;
        } else {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    Ok(BodyDigest {
        size: offset,
        sha256: hex::encode(hasher.finalize()),
    })
}

/// The error for a body whose digest is not the recorded one.
pub fn mismatch(name: &str, expected: &BodyDigest, actual: &BodyDigest) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{name} is corrupt or truncated: expected {} bytes with SHA-256 {}, read {} bytes with SHA-256 {}",
            expected.size, expected.sha256, actual.size, actual.sha256
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[tokio::test]
    async fn digest_of_streamed_body() {
        let (mut reader, handle) = DigestReader::new(std::io::Cursor::new(Vec::<u8>::new()));
        let mut sink = Vec::new();
        reader.read_to_end(&mut sink).await.unwrap();
        assert_eq!(
            handle.finish(),
            BodyDigest {
                size: 0,
                sha256: EMPTY_SHA256.into()
            }
        );
    }

    #[tokio::test]
    async fn verification_fails_at_end_of_a_changed_body() {
        let (mut reader, handle) = DigestReader::new(std::io::Cursor::new(b"bundle".to_vec()));
        reader.read_to_end(&mut Vec::new()).await.unwrap();
        let expected = handle.finish();
        let mut good = VerifyingReader::new(
            std::io::Cursor::new(b"bundle".to_vec()),
            "b",
            expected.clone(),
        );
        good.read_to_end(&mut Vec::new()).await.unwrap();
        let mut bad = VerifyingReader::new(
            std::io::Cursor::new(b"bundlf".to_vec()),
            "001.bundle",
            expected,
        );
        let error = bad.read_to_end(&mut Vec::new()).await.unwrap_err();
        assert!(
            error.to_string().contains("001.bundle is corrupt"),
            "{error}"
        );
    }

    #[test]
    fn file_digest_follows_a_growing_file() {
        use std::io::Write;
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grows");
        let mut writer = std::fs::File::create(&path).unwrap();
        let reader = std::fs::File::open(&path).unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let follower = {
            let done = done.clone();
            std::thread::spawn(move || {
                let mut ranges = Vec::new();
                let digest = digest_file(
                    &reader,
                    || done.load(Ordering::Acquire),
                    |offset, len| ranges.push((offset, len)),
                )
                .unwrap();
                (digest, ranges)
            })
        };
        let mut all = Vec::new();
        for round in 0..20u8 {
            let chunk = vec![round; 100_000];
            writer.write_all(&chunk).unwrap();
            all.extend_from_slice(&chunk);
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        done.store(true, Ordering::Release);
        let (digest, ranges) = follower.join().unwrap();
        assert_eq!(digest, digest_of(&all));
        let covered: u64 = ranges.iter().map(|(_, len)| len).sum();
        assert_eq!(covered, all.len() as u64);
        assert!(ranges.windows(2).all(|w| w[0].0 + w[0].1 == w[1].0));
    }
}
