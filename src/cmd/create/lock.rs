//! One writer per repository (#12): a run holds `gitbak-locks/<id>/<storage>`
//! while it writes that storage's repositories under backup id `<id>`.
//!
//! The lock is per id and storage, so one gitbak per Gitaly node can write
//! the same id into one shared location (`--local-storages-only`), while a
//! second run of the same id over the same storage is refused instead of
//! failing on the first one's files. It is taken when the run first meets
//! the storage (all of them at the start with `--discover`), by a
//! create-only put, so it works alike on every backend, and deleted when
//! the run ends, failed or interrupted. A `kill -9` leaves it: the next
//! run on the same host sees that its process is gone and replaces it;
//! other hosts wait for `--lock-timeout`. With `--immutable` nothing is
//! written (a write-once bucket could never delete it).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use crate::layout::time::Timestamp;
use crate::layout::{self, BackupId, StorageName};
use crate::lock::process::{self, ProcessIdentity};
use crate::lock::{Judge, LockRecord, Stale};
use crate::storage::{Key, StorageError, StorageExt, WriteMode};

use super::Context;

/// A storage's lock, as this run found it.
#[derive(Debug, Clone)]
enum Entry {
    /// The lock's bytes as this run wrote them (none with `--immutable`).
    Held(Vec<u8>),
    /// Another run holds it (or it could not be taken): why, for its jobs.
    Refused(String),
}

/// The locks of one run.
pub(super) struct RunLocks {
    ctx: Context,
    id: BackupId,
    /// Who this run is, for its locks; `Err` when it cannot say (no
    /// `/proc`), which refuses every storage rather than write a lock no
    /// later run could judge. `None` with `--immutable`: no locks at all.
    me: Option<Result<ProcessIdentity, String>>,
    /// Locks taken before this (Unix seconds) are stale.
    cutoff: i64,
    entries: Mutex<BTreeMap<StorageName, Arc<OnceCell<Entry>>>>,
}

impl RunLocks {
    pub(super) fn new(
        ctx: &Context,
        id: &BackupId,
        lock_timeout: crate::retention::Duration,
    ) -> Self {
        let now = (ctx.now)();
        let me = (!ctx.immutable).then(|| {
            ProcessIdentity::current()
                .map_err(|error| format!("cannot identify this process for its run lock: {error}"))
        });
        Self {
            ctx: ctx.clone(),
            id: id.clone(),
            me,
            cutoff: lock_timeout
                .before(Timestamp::from_unix_seconds(now))
                .unix_seconds(),
            entries: Mutex::default(),
        }
    }

    /// Takes `storage`'s lock the first time a job meets it; every job of
    /// the storage shares the outcome. `Err`: the job must not write.
    pub(super) async fn enter(&self, storage: &StorageName) -> Result<(), String> {
        let cell = {
            let mut entries = self
                .entries
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            entries.entry(storage.clone()).or_default().clone()
        };
        match cell.get_or_init(|| self.take(storage)).await {
            Entry::Held(_) => Ok(()),
            Entry::Refused(why) => Err(why.clone()),
        }
    }

    async fn take(&self, storage: &StorageName) -> Entry {
        let me = match &self.me {
            None => return Entry::Held(Vec::new()),
            Some(Err(why)) => return Entry::Refused(why.clone()),
            Some(Ok(me)) => me,
        };
        let record = LockRecord::new(crate::tempname::host(), me, (self.ctx.now)()).to_bytes();
        let key = layout::lock_key(&self.id, storage);
        // Each round either takes the lock, finds a live holder, or removes
        // a stale lock and tries again; a lock that keeps changing hands is
        // someone else's race to win.
        for _ in 0..3 {
            match self
                .ctx
                .storage
                .put_bytes(&key, record.clone(), WriteMode::CreateOnly)
                .await
            {
                Ok(_) => return Entry::Held(record),
                Err(StorageError::AlreadyExists { .. }) => {}
                Err(error) => return Entry::Refused(cannot_take(&key, &error)),
            }
            match self.replace_if_stale(storage, &key).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(why) => return Entry::Refused(why),
            }
        }
        Entry::Refused(format!(
            "{key} changed hands while this run tried to take it: another run of backup id {} \
             is starting; rerun later",
            self.id
        ))
    }

    /// Removes the lock at `key` when its holder is gone or it expired;
    /// `Ok(false)`: gone already (try again); `Err`: a live holder's.
    async fn replace_if_stale(&self, storage: &StorageName, key: &Key) -> Result<bool, String> {
        let found = match self.ctx.storage.get_bytes(key).await {
            Ok(bytes) => bytes,
            Err(error) if error.is_not_found() => return Ok(false),
            Err(error) => return Err(cannot_take(key, &error)),
        };
        let holder = LockRecord::parse(&found);
        let stale = match &holder {
            Some(holder) => self.judge(holder),
            // Not written by gitbak (or damaged): only its age can free it.
            None => match self.ctx.storage.head(key).await {
                Ok(Some(meta)) => {
                    let age = meta
                        .modified
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |since| since.as_secs() as i64);
                    (age < self.cutoff).then_some(Stale::Expired)
                }
                Ok(None) => return Ok(false),
                Err(error) => return Err(cannot_take(key, &error)),
            },
        };
        let holder_text = holder
            .as_ref()
            .map_or_else(|| "an unreadable holder".to_owned(), LockRecord::describe);
        let Some(stale) = stale else {
            return Err(format!(
                "storage {storage} is being backed up under id {} by {holder_text} ({key}); wait \
                 for that run to end or use another --id; if that run is dead on another host, \
                 delete {key} (locks older than --lock-timeout are replaced)",
                self.id
            ));
        };
        // Race-safe: only the very lock judged is deleted (a run that
        // replaced it meanwhile keeps its own), and the create-only put
        // that follows has one winner; the loser finds the winner live.
        match self.ctx.storage.get_bytes(key).await {
            Ok(again) if again == found => {}
            Ok(_) => return Ok(true),
            Err(error) if error.is_not_found() => return Ok(true),
            Err(error) => return Err(cannot_take(key, &error)),
        }
        self.ctx
            .storage
            .delete(key)
            .await
            .map_err(|error| cannot_take(key, &error))?;
        let reason = match stale {
            Stale::HolderGone => "its process no longer runs on this host",
            Stale::Expired => "it is older than --lock-timeout",
        };
        self.ctx.progress.run_warning(
            &format!("replaced the stale run lock {key} of {holder_text}: {reason}"),
            &[("storage", storage.as_str())],
        );
        Ok(true)
    }

    fn judge(&self, holder: &LockRecord) -> Option<Stale> {
        let boot_id = process::boot_id().unwrap_or_default();
        let start_ticks_of = |pid| process::start_ticks(pid).ok().flatten();
        Judge {
            host: crate::tempname::host(),
            boot_id: &boot_id,
            cutoff: self.cutoff,
            start_ticks_of: &start_ticks_of,
        }
        .stale(holder)
    }

    /// Storages whose lock was refused, when every storage met was: the
    /// run did nothing, and says so once.
    pub(super) fn refused_everywhere(&self) -> Option<Vec<StorageName>> {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let refused: Vec<StorageName> = entries
            .iter()
            .filter(|(_, cell)| matches!(cell.get(), Some(Entry::Refused(_))))
            .map(|(storage, _)| storage.clone())
            .collect();
        (!refused.is_empty() && refused.len() == entries.len()).then_some(refused)
    }

    /// Deletes every lock this run holds, if it is still this run's (a run
    /// that outlived `--lock-timeout` may have lost it to another).
    pub(super) async fn release(&self) {
        if !matches!(self.me, Some(Ok(_))) {
            return;
        }
        let held: Vec<(StorageName, Vec<u8>)> = {
            let entries = self
                .entries
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            entries
                .iter()
                .filter_map(|(storage, cell)| match cell.get() {
                    Some(Entry::Held(mine)) => Some((storage.clone(), mine.clone())),
                    _ => None,
                })
                .collect()
        };
        for (storage, mine) in held {
            let key = layout::lock_key(&self.id, &storage);
            let released = match self.ctx.storage.get_bytes(&key).await {
                Ok(found) if found == mine => self.ctx.storage.delete(&key).await,
                Ok(_) => Ok(()),
                Err(error) if error.is_not_found() => Ok(()),
                Err(error) => Err(error),
            };
            if let Err(error) = released {
                self.ctx.progress.run_warning(
                    &format!(
                        "cannot remove this run's lock {key}: {error}; delete it, or the next run \
                         of this id on another host waits for --lock-timeout"
                    ),
                    &[("storage", storage.as_str())],
                );
            }
        }
    }
}

fn cannot_take(key: &Key, error: &StorageError) -> String {
    format!("cannot take the run lock {key}: {error}")
}
