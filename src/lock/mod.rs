//! Run locks: the record a run leaves at `gitbak-locks/<id>/<storage>`
//! while it writes that storage's repositories under that backup id, and
//! when another run may take it over.
//!
//! Pure apart from `process`, which reads this host's process table: the
//! storage calls (create-only put, delete) are `cmd::create::lock`'s, and
//! the clock is passed in.

pub mod process;

use serde::{Deserialize, Serialize};

use self::process::ProcessIdentity;

/// What a lock object holds (JSON): who holds it and since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRecord {
    pub host: String,
    pub pid: u32,
    /// When the holding process started (RFC 3339), for people.
    pub process_started: String,
    /// When the lock was taken (RFC 3339): `--lock-timeout` counts from here.
    pub taken_at: String,
    /// The process exactly, on its host: the kernel's boot id and its
    /// start time in clock ticks since boot, which a reused pid does not
    /// share.
    pub boot_id: String,
    pub start_ticks: u64,
    pub gitbak_version: String,
}

impl LockRecord {
    /// A record naming `process` on `host`, taken at `now` (Unix seconds).
    pub fn new(host: &str, process: &ProcessIdentity, now: i64) -> Self {
        Self {
            host: host.to_owned(),
            pid: process.pid,
            process_started: crate::layout::rfc3339(process.started_at),
            taken_at: crate::layout::rfc3339(now),
            boot_id: process.boot_id.clone(),
            start_ticks: process.start_ticks,
            gitbak_version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    pub fn parse(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }

    /// `pid 1234 on host h (running since …, lock taken …)`.
    pub fn describe(&self) -> String {
        format!(
            "gitbak pid {} on host {} (running since {}, lock taken {})",
            self.pid, self.host, self.process_started, self.taken_at
        )
    }

    fn taken_at_seconds(&self) -> Option<i64> {
        crate::layout::time::parse_rfc3339(&self.taken_at)
            .ok()
            .map(crate::layout::time::Timestamp::unix_seconds)
    }
}

/// Why a lock may be taken over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// It names this host, and no process with that pid and start time
    /// runs here (killed, or the host rebooted).
    HolderGone,
    /// Taken before the cutoff (`--lock-timeout` ago).
    Expired,
}

/// Where and when a lock is judged.
pub struct Judge<'a> {
    pub host: &'a str,
    pub boot_id: &'a str,
    /// Locks taken before this (Unix seconds) are stale.
    pub cutoff: i64,
    /// The start ticks of a process running here with this pid, if any.
    pub start_ticks_of: &'a dyn Fn(u32) -> Option<u64>,
}

impl Judge<'_> {
    /// `None`: the holder may still be writing; leave it alone.
    pub fn stale(&self, record: &LockRecord) -> Option<Stale> {
        if record
            .taken_at_seconds()
            .is_some_and(|taken| taken < self.cutoff)
        {
            return Some(Stale::Expired);
        }
        if record.host != self.host {
            // Another host's processes cannot be seen from here.
            return None;
        }
        let runs = record.boot_id == self.boot_id
            && (self.start_ticks_of)(record.pid) == Some(record.start_ticks);
        (!runs).then_some(Stale::HolderGone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(host: &str, pid: u32, ticks: u64, taken_at: i64) -> LockRecord {
        let process = ProcessIdentity {
            pid,
            boot_id: "boot-a".into(),
            start_ticks: ticks,
            started_at: taken_at - 10,
        };
        LockRecord::new(host, &process, taken_at)
    }

    #[test]
    fn staleness() {
        // Process 100 runs here, started at tick 5000.
        let running = |pid: u32| (pid == 100).then_some(5000);
        let judge = Judge {
            host: "node-1",
            boot_id: "boot-a",
            cutoff: 1_000,
            start_ticks_of: &running,
        };
        for (case, lock, want) in [
            ("live here", record("node-1", 100, 5000, 2_000), None),
            (
                "dead pid",
                record("node-1", 101, 5000, 2_000),
                Some(Stale::HolderGone),
            ),
            (
                "pid reused",
                record("node-1", 100, 4000, 2_000),
                Some(Stale::HolderGone),
            ),
            ("another host", record("node-2", 101, 5000, 2_000), None),
            (
                "expired, another host",
                record("node-2", 101, 5000, 999),
                Some(Stale::Expired),
            ),
            (
                "expired, live here",
                record("node-1", 100, 5000, 999),
                Some(Stale::Expired),
            ),
        ] {
            assert_eq!(judge.stale(&lock), want, "{case}");
        }
        let mut rebooted = record("node-1", 100, 5000, 2_000);
        rebooted.boot_id = "boot-b".into();
        assert_eq!(judge.stale(&rebooted), Some(Stale::HolderGone));
    }

    #[test]
    fn records_round_trip_and_describe_their_holder() {
        let lock = record("node-1", 42, 7, 1_700_000_000);
        assert_eq!(LockRecord::parse(&lock.to_bytes()), Some(lock.clone()));
        assert_eq!(
            lock.describe(),
            "gitbak pid 42 on host node-1 (running since 2023-11-14T22:13:10Z, lock taken \
             2023-11-14T22:13:20Z)"
        );
        assert_eq!(LockRecord::parse(b"not json"), None);
    }
}
