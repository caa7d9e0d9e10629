//! Durability of small files paid per batch: one `syncfs` of the backup
//! filesystem, shared by every file that waits for it, instead of an fsync
//! of each file and of its directory.
//!
//! A no-change incremental run writes two manifests per repository and
//! nothing else; four fsyncs each (file and directory, twice) were most of
//! its cost (#10). Here a caller writes its files under temporary names,
//! waits for one `syncfs` that started after they were written (group
//! commit: callers that arrive while one runs share the next), then renames
//! them into place. So a file is never visible before its bytes are
//! durable, and the renames of a job's earlier files are durable before a
//! later file of that job (its manifest) becomes visible, because the later
//! file's sync starts after those renames. A rename itself becomes durable
//! with the next sync: `settle` before the backup id marker covers a run's
//! last ones; a rename lost to a power cut only means that repository is
//! backed up again.
//!
//! Boundary: only what `syncfs` covers. Files on another filesystem than
//! the storage root (a mount inside it), and kernels before 5.8, whose
//! `syncfs` does not report writeback errors, get an fsync of each file
//! and directory, as before. Blocking: call it off the async threads.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, OnceLock};

/// One filesystem's group commit.
#[derive(Debug)]
pub(crate) struct SyncGroup {
    root: PathBuf,
    /// The root directory, opened at first use (it may not exist before
    /// the first file is written); `None` where `syncfs` cannot be trusted.
    target: OnceLock<Option<Target>>,
    state: Mutex<State>,
    finished: Condvar,
}

#[derive(Debug)]
struct Target {
    directory: File,
    device: u64,
}

#[derive(Debug, Default)]
struct State {
    /// Syncs begun and finished, counted from 1.
    started: u64,
    finished: u64,
    running: bool,
    /// The error of the latest finished sync, if it failed.
    failed: Option<io::ErrorKind>,
}

/// How the files of one batch were made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// By a shared `syncfs`: renames need nothing more.
    Synced,
    /// By an fsync of each file: each rename is followed by an fsync of
    /// its directory.
    PerFile,
}

impl SyncGroup {
    pub(crate) fn new(root: PathBuf) -> Self {
        Self {
            root,
            target: OnceLock::new(),
            state: Mutex::new(State::default()),
            finished: Condvar::new(),
        }
    }

    /// Makes `files` durable (bytes and names so far), with one shared
    /// sync where it covers them all, else with an fsync of each.
    pub(crate) fn make_durable(&self, files: &[&File]) -> io::Result<Durability> {
        if let Some(target) = self.target() {
            let same_filesystem = files
                .iter()
                .map(|file| file.metadata().map(|metadata| metadata.dev()))
                .collect::<io::Result<Vec<_>>>()?
                .iter()
                .all(|device| *device == target.device);
            if same_filesystem && self.sync_after_now(target).is_ok() {
                return Ok(Durability::Synced);
            }
            // A failed shared sync is retried the precise way, whose error
            // names what failed.
        }
        for file in files {
            file.sync_all()?;
        }
        Ok(Durability::PerFile)
    }

    /// Makes every rename done so far durable.
    pub(crate) fn settle(&self) -> io::Result<()> {
        match self.target() {
            Some(target) => self.sync_after_now(target),
            // Every rename without a shared sync was followed by an fsync
            // of its directory.
            None => Ok(()),
        }
    }

    fn target(&self) -> Option<&Target> {
        self.target
            .get_or_init(|| {
                if !syncfs_reports_errors() {
                    return None;
                }
                let directory = File::open(&self.root).ok()?;
                let device = directory.metadata().ok()?.dev();
                Some(Target { directory, device })
            })
            .as_ref()
    }

    /// Returns once a sync that began after this call has finished: one
    /// already running may have missed what the caller just wrote.
    fn sync_after_now(&self, target: &Target) -> io::Result<()> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let needed = state.started + 1;
        loop {
            if state.finished >= needed {
                return match state.failed {
                    None => Ok(()),
                    Some(kind) => Err(io::Error::new(kind, "syncfs failed")),
                };
            }
            if state.running {
                state = self.finished.wait(state).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            state.running = true;
            state.started += 1;
            let generation = state.started;
            drop(state);
            crate::failpoint::hit("syncfs");
            // SAFETY: the descriptor stays open for the call (owned by
            // `target`, which outlives it).
            let result = unsafe { libc::syncfs(target.directory.as_raw_fd()) };
            let failed = (result != 0).then(|| io::Error::last_os_error().kind());
            state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            state.running = false;
            state.finished = generation;
            state.failed = failed;
            self.finished.notify_all();
        }
    }
}

/// `syncfs` reports writeback errors since Linux 5.8; before, it returned
/// 0 whatever happened, and durability could fail silently.
fn syncfs_reports_errors() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .is_ok_and(|release| kernel_at_least(release.trim(), (5, 8)))
}

fn kernel_at_least(release: &str, minimum: (u32, u32)) -> bool {
    let mut numbers = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|part| part.parse::<u32>().ok());
    match (numbers.next().flatten(), numbers.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= minimum,
        _ => false,
    }
}

/// fsync of a directory, for renames not covered by a shared sync.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn kernel_versions() {
        assert!(kernel_at_least("6.1.0-18-amd64", (5, 8)));
        assert!(kernel_at_least("5.8.0", (5, 8)));
        assert!(!kernel_at_least("5.4.0-42-generic", (5, 8)));
        assert!(!kernel_at_least("4.19.0", (5, 8)));
        assert!(!kernel_at_least("garbage", (5, 8)));
    }

    #[test]
    fn callers_share_syncs_and_each_waits_for_one_begun_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let group = Arc::new(SyncGroup::new(dir.path().to_path_buf()));
        let threads: Vec<_> = (0..8)
            .map(|n| {
                let group = group.clone();
                let path = dir.path().join(format!("f{n}"));
                std::thread::spawn(move || {
                    let file = File::create(path).unwrap();
                    let before = group.state.lock().unwrap().started;
                    let durability = group.make_durable(&[&file]).unwrap();
                    let state = group.state.lock().unwrap();
                    assert!(state.finished > before, "no sync began after the write");
                    durability
                })
            })
            .collect();
        for thread in threads {
            let durability = thread.join().unwrap();
            if syncfs_reports_errors() {
                assert_eq!(durability, Durability::Synced);
            }
        }
        if syncfs_reports_errors() {
            let syncs = group.state.lock().unwrap().finished;
            assert!((1..=8).contains(&syncs), "{syncs} syncs for 8 callers");
        }
        group.settle().unwrap();
    }
}
