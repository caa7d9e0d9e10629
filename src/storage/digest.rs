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
                    let actual = hex::encode(this.hasher.clone().finalize());
                    if this.size != this.expected.size || actual != this.expected.sha256 {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!(
                                "{} is corrupt or truncated: expected {} bytes with SHA-256 {}, read {} bytes with SHA-256 {}",
                                this.name, this.expected.size, this.expected.sha256, this.size, actual
                            ),
                        )));
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
}
