//! A git child's stdout as a stream whose end means success.
//!
//! Storage takes the end of a body as proof that it is complete, so this
//! reader reports end-of-file only after git exited 0; a failed git becomes
//! a read error carrying git's last stderr line.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::process::{Child, ChildStdout};

use super::{stderr_tail, GitError};

/// Most of git's stderr we keep for the error message.
const STDERR_KEEP: usize = 8 << 10;

type Finish = Pin<Box<dyn Future<Output = Result<(), GitError>> + Send>>;

pub struct GitReader {
    stdout: ChildStdout,
    finish: Option<Finish>,
}

impl GitReader {
    /// Takes over a spawned child whose stdout and stderr are piped.
    /// `feeder` writes its stdin (if any) and must finish on its own.
    pub(crate) fn new(
        mut child: Child,
        command: String,
        feeder: Option<tokio::task::JoinHandle<()>>,
    ) -> Result<Self, GitError> {
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| GitError::Invalid("git stdout is not piped".into()))?;
        // A 1 MiB pipe instead of 64 KiB: a bundle then crosses it in large
        // reads, which cuts wake-ups and copies by an order of magnitude.
        // Best effort: the kernel may cap it (pipe-max-size); 64 KiB works.
        let _ = rustix::pipe::fcntl_setpipe_size(&stdout, super::PIPE_SIZE);
        let stderr = child.stderr.take();
        let finish = async move {
            let stderr_task = tokio::spawn(async move {
                let mut kept = Vec::new();
                if let Some(mut stderr) = stderr {
                    let mut chunk = [0u8; 4096];
                    while let Ok(read) = stderr.read(&mut chunk).await {
                        if read == 0 {
                            break;
                        }
                        kept.extend_from_slice(&chunk[..read]);
                        if kept.len() > STDERR_KEEP {
                            kept.drain(..kept.len() - STDERR_KEEP);
                        }
                    }
                }
                kept
            });
            let status = child.wait().await.map_err(|source| GitError::Io {
                command: command.clone(),
                source,
            })?;
            if let Some(feeder) = feeder {
                let _ = feeder.await;
            }
            let stderr = stderr_task.await.unwrap_or_default();
            if status.success() {
                Ok(())
            } else {
                Err(GitError::Failed {
                    command,
                    status,
                    stderr_tail: stderr_tail(&stderr),
                })
            }
        };
        Ok(Self {
            stdout,
            finish: Some(Box::pin(finish)),
        })
    }
}

impl AsyncRead for GitReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stdout).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() == before && buf.remaining() > 0 => {}
            other => return other,
        }
        // stdout is at its end: the body is complete only if git succeeded.
        let Some(finish) = self.finish.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        match finish.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                self.finish = None;
                Poll::Ready(result.map_err(io::Error::other))
            }
        }
    }
}
