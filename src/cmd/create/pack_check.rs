//! The packs a bundle may copy bytes from, checked while git packs.
//!
//! `git pack-objects` copies the entries it reuses from the repository's
//! packs (and its alternates', such as a Gitaly object pool) without
//! checking them, so a byte damaged at rest would go into the bundle and
//! show only at restore. Every entry of those packs is checked against the
//! CRC32 its index records (`crate::pack`), on the blocking pool while git
//! packs, and the bundle is published only once the check has passed.
//!
//! Which packs: those present when the bundle is started (just after the
//! refs snapshot), opened before pack-objects is spawned (up to
//! `OPEN_UP_FRONT`), so that every pack git can find for the snapshot's
//! objects is among them, and one a concurrent repack deletes stays
//! readable to the check. A pack created
//! after that (a push, a repack running alongside) may also be read by
//! git; it is not checked: git wrote it moments ago from bytes it had
//! just verified, while the damage checked for is decay at rest.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};

use tokio::io::{AsyncRead, ReadBuf};
use tokio::task::JoinHandle;

use crate::git::ObjectFormat;
use crate::pack::{reusable_packs, OpenPack, PackError};

use super::{CreateError, Target};

/// A check under way; dropping it stops the check at its next read.
pub(super) struct PackCheck {
    verdict: JoinHandle<Result<(), PackError>>,
    stop: Arc<AtomicBool>,
    repository: String,
}

/// Lists and opens the packs `pack-objects` may reuse for `target`, then
/// checks them in the background. Returns once they are open.
pub(super) async fn start(target: &Target, format: ObjectFormat) -> Result<PackCheck, CreateError> {
    let objects = target.repository.join("objects");
    let stop = Arc::new(AtomicBool::new(false));
    let (opened_tx, opened) = tokio::sync::oneshot::channel();
    let flag = stop.clone();
    // One trip to the blocking pool: open, say so, then check.
    let verdict = tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let cpu_started = thread_cpu_us();
        let (open, later) = open_packs(&objects)?;
        let later_count = later.len();
        let _ = opened_tx.send(());
        let mut bytes = 0;
        for pack in &open {
            bytes += pack.check(format, &flag)?;
        }
        for files in later {
            if let Some(pack) = OpenPack::open(files)? {
                bytes += pack.check(format, &flag)?;
            }
        }
        // benches/integrity.sh reads this line: the check's own cost.
        tracing::debug!(
            packs = open.len() + later_count,
            bytes,
            elapsed_us = started.elapsed().as_micros() as u64,
            cpu_us = thread_cpu_us().saturating_sub(cpu_started),
            "source packs checked"
        );
        Ok(())
    });
    let mut check = PackCheck {
        verdict,
        stop,
        repository: target.path.to_string(),
    };
    if opened.await.is_err() {
        // The task ended before opening all: its verdict says why.
        let source = check.join().await.err().unwrap_or(PackError::Stopped);
        return Err(check.error(source));
    }
    Ok(check)
}

/// CPU time of this thread: the check runs on one blocking thread, so
/// this is its own cost, whatever else the machine runs.
fn thread_cpu_us() -> u64 {
    let time = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    u64::try_from(time.tv_sec).unwrap_or(0) * 1_000_000
        + u64::try_from(time.tv_nsec).unwrap_or(0) / 1_000
}

/// A panicked check is a failed one.
fn joined(result: Result<Result<(), PackError>, tokio::task::JoinError>) -> Result<(), PackError> {
    result.unwrap_or_else(|error| {
        Err(PackError::io(
            &PathBuf::from("objects/pack"),
            std::io::Error::other(error),
        ))
    })
}

/// Packs opened before git starts, at most: two descriptors each, per
/// repository being backed up. A repository with more (one housekeeping
/// has not repacked) has the rest opened as the check reaches them, so a
/// repack that deletes one before then takes it out of the check.
const OPEN_UP_FRONT: usize = 128;

/// The packs of `objects` and its alternates: the first `OPEN_UP_FRONT`
/// opened (a pack already gone is left out: git cannot find it either),
/// the others listed.
fn open_packs(
    objects: &std::path::Path,
) -> Result<(Vec<OpenPack>, Vec<crate::pack::PackFiles>), PackError> {
    let mut listed = reusable_packs(objects)?;
    let later = listed.split_off(listed.len().min(OPEN_UP_FRONT));
    let mut open = Vec::with_capacity(listed.len());
    for files in listed {
        open.extend(OpenPack::open(files)?);
    }
    Ok((open, later))
}

impl PackCheck {
    /// Waits for the verdict.
    pub(super) async fn finish(mut self) -> Result<(), CreateError> {
        self.join().await.map_err(|source| self.error(source))
    }

    async fn join(&mut self) -> Result<(), PackError> {
        joined((&mut self.verdict).await)
    }

    fn error(&self, source: PackError) -> CreateError {
        CreateError::Pack {
            repository: self.repository.clone(),
            source,
        }
    }

    /// Runs `work` (git writing the pack) while the check goes on. A
    /// failed check stops `work` at once (dropping it kills git) and is
    /// the error; when `work` fails, the check still has its say, since
    /// a damaged pack may be why git failed.
    pub(super) async fn alongside<T>(
        self,
        work: impl Future<Output = Result<T, CreateError>>,
    ) -> Result<T, CreateError> {
        let mut check = std::pin::pin!(self.finish());
        let mut work = std::pin::pin!(work);
        tokio::select! {
            verdict = &mut check => {
                verdict?;
                work.await
            }
            result = &mut work => {
                check.await?;
                result
            }
        }
    }

    /// `body` (git's pack) followed by the check's verdict: the stream
    /// fails as soon as the check does, and ends only once it has passed,
    /// so an upload that takes the end of its body as complete never
    /// completes a bundle copied from a damaged pack. `Verdict` then
    /// gives the check's error, to report in place of the upload's.
    pub(super) fn guard<R>(self, body: R) -> (Guarded<R>, Verdict) {
        let verdict = Verdict::default();
        (
            Guarded {
                body,
                check: Some(self),
                verdict: verdict.clone(),
            },
            verdict,
        )
    }
}

impl Drop for PackCheck {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What became of a guarded check: its error, or the check itself when
/// the body was dropped before it finished (git or the upload failed).
#[derive(Clone, Default)]
pub(super) struct Verdict(Arc<Mutex<Option<Result<PackCheck, CreateError>>>>);

impl Verdict {
    /// The check's error, if it failed; waits for a check still running.
    pub(super) async fn failure(&self) -> Option<CreateError> {
        let left = self.0.lock().ok()?.take()?;
        match left {
            Err(error) => Some(error),
            Ok(check) => check.finish().await.err(),
        }
    }

    fn set(&self, value: Result<PackCheck, CreateError>) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(value);
        }
    }
}

pub(super) struct Guarded<R> {
    body: R,
    check: Option<PackCheck>,
    verdict: Verdict,
}

impl<R> Drop for Guarded<R> {
    fn drop(&mut self) {
        if let Some(check) = self.check.take() {
            self.verdict.set(Ok(check));
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Guarded<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if let Some(check) = this.check.as_mut() {
            if let Poll::Ready(result) = Pin::new(&mut check.verdict).poll(cx) {
                let check = this.check.take().expect("matched Some just above");
                if let Err(source) = joined(result) {
                    let error = check.error(source);
                    let message = error.to_string();
                    this.verdict.set(Err(error));
                    return Poll::Ready(Err(std::io::Error::other(message)));
                }
            }
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.body).poll_read(cx, buf) {
            // The body's end waits for the check, whose waker is registered.
            Poll::Ready(Ok(()))
                if buf.filled().len() == before && buf.remaining() > 0 && this.check.is_some() =>
            {
                Poll::Pending
            }
            other => other,
        }
    }
}
