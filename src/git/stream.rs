//! A git child's stdout as a stream whose end means success.
//!
//! Storage takes the end of a body as proof that it is complete, so this
//! reader reports end-of-file only after git exited 0; a failed git becomes
//! a read error carrying git's last stderr line.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
use tokio::process::{Child, ChildStdout};
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::{stderr_tail, Git, GitError};

type Finish = Pin<Box<dyn Future<Output = Result<(), GitError>> + Send>>;

pub struct GitReader {
    stdout: ChildStdout,
    finish: Option<Finish>,
    /// Ready once the run is cancelled: reading then fails at once, rather
    /// than after git wrote the whole pack into an upload nobody wants.
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
    command: String,
}

impl GitReader {
    /// Takes over a spawned child whose stdout and stderr are piped.
    /// `feeder` writes its stdin (if any) and must finish on its own.
    pub(crate) fn new(
        git: &Git,
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
        let stderr_task = super::drain_stderr(&mut child);
        let cancelled = Box::pin(git.cancel.clone().cancelled_owned());
        let git = git.clone();
        let described = command.clone();
        let finish = async move {
            let status = git.wait(&mut child, &command).await?;
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
            cancelled,
            command: described,
        })
    }
}

impl AsyncRead for GitReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.finish.is_some() && self.cancelled.as_mut().poll(cx).is_ready() {
            // Dropping the child kills it; it wrote only into our pipe.
            self.finish = None;
            let command = self.command.clone();
            return Poll::Ready(Err(io::Error::other(GitError::Cancelled { command })));
        }
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
