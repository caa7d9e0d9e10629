//! `--metrics-file`: what a run of create, restore or verify did, as a
//! Prometheus textfile for node_exporter's textfile collector. Counts the
//! run's job events (one more consumer beside the log), takes verify's
//! counts, and at the end renders them (`text`) and replaces the file
//! atomically (`file`). Does no work of the run and never fails it.
//!
//! One file may serve every command of a host: each run replaces only the
//! series labelled with its own command. The last success is carried over
//! from the previous file when a run fails, so "no success for 26 hours"
//! is one alert rule.

pub mod file;
pub mod text;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::cmd::verify::{VerifyCounts, VerifyReport};
use crate::job::progress::{CommandName, Done, Event, Progress};
use crate::job::Job;
use crate::layout::StorageName;
use text::{sample, Families, Family};

pub use file::MetricsFileError;

/// The commands that write metrics, as the `command` label names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsCommand {
    Create,
    Restore,
    Verify,
}

impl MetricsCommand {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Restore => "restore",
            Self::Verify => "verify",
        }
    }
}

/// The `result` label of `gitbak_last_run_repositories`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum JobResult {
    /// Backed up, or restored.
    Completed,
    /// An incremental create found nothing changed.
    Unchanged,
    /// The repository has no refs.
    Empty,
    /// No repository at that path (a typo in a job line shows up here).
    NonExistent,
    /// Not an error: already done by an earlier run of the id, or not for this node.
    Skipped,
    Failed,
    /// Started, then stopped by SIGINT or SIGTERM.
    Interrupted,
}

impl JobResult {
    fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Unchanged => "unchanged",
            Self::Empty => "empty",
            Self::NonExistent => "non_existent",
            Self::Skipped => "skipped",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    /// Jobs started, by storage; those with no result were interrupted.
    started: BTreeMap<String, u64>,
    results: BTreeMap<(String, JobResult), u64>,
    /// Create: the bytes of the files written; restore: of the backup
    /// files read; summed over the repositories.
    bytes: u64,
    verify: Option<VerifyCounts>,
    /// Verify: repositories checked by storage, and how many of them broken.
    verified: BTreeMap<String, (u64, u64)>,
}

/// One run's metrics, gathered while it runs.
pub struct Recorder {
    command: MetricsCommand,
    path: PathBuf,
    /// Unix seconds.
    started_at: f64,
    started: Instant,
    counts: Mutex<Counts>,
}

impl Recorder {
    /// Starts the clock of a run whose metrics go to `path`.
    pub fn start(command: MetricsCommand, path: PathBuf) -> Arc<Self> {
        Arc::new(Self {
            command,
            path,
            started_at: unix_seconds(),
            started: Instant::now(),
            counts: Mutex::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `progress`, with this recorder counting its job events too.
    pub fn observe(self: &Arc<Self>, progress: Arc<dyn Progress>) -> Arc<dyn Progress> {
        Arc::new(Observed {
            progress,
            metrics: self.clone(),
        })
    }

    /// What verify checked and found broken, in all and by storage.
    pub fn set_verify(&self, report: &VerifyReport) {
        let mut broken_by_repository: BTreeMap<(&str, &str), bool> = BTreeMap::new();
        for backup in &report.backups {
            *broken_by_repository
                .entry((backup.storage.as_str(), backup.relative_path.as_str()))
                .or_default() |= !backup.is_sound();
        }
        let mut counts = self.lock();
        counts.verify = Some(report.counts.clone());
        for ((storage, _), broken) in broken_by_repository {
            let entry = counts.verified.entry(storage_label(storage)).or_default();
            entry.0 += 1;
            entry.1 += u64::from(broken);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn count(&self, job: &Job, event: &Event<'_>) {
        let storage = storage_label(&job.storage_name);
        let result = match event {
            Event::Started => {
                *self.lock().started.entry(storage).or_default() += 1;
                return;
            }
            Event::Completed { details } => {
                self.lock().bytes += details.map_or(0, |details| details.bytes);
                match details.map(|details| details.kind) {
                    None | Some(Done::Written) => JobResult::Completed,
                    Some(Done::Unchanged) => JobResult::Unchanged,
                    Some(Done::Empty) => JobResult::Empty,
                    Some(Done::NonExistent) => JobResult::NonExistent,
                }
            }
            Event::Skipped { .. } => JobResult::Skipped,
            Event::Failed { .. } => JobResult::Failed,
            // Counted as started without a result (`families`).
            Event::Warning { .. } | Event::Interrupted => return,
        };
        *self.lock().results.entry((storage, result)).or_default() += 1;
    }

    /// Writes the file for a run that ended with `exit_code`, keeping the
    /// other commands' series and, unless this run succeeded, this
    /// command's last success.
    pub fn write(&self, exit_code: i32) -> Result<(), MetricsFileError> {
        let ended_at = unix_seconds();
        let duration = (self.started.elapsed().as_millis() as f64) / 1000.0;
        file::update(&self.path, |previous| {
            let previous = text::parse(previous);
            let command = self.command.as_str();
            let last_success = if exit_code == 0 {
                ended_at
            } else {
                text::value_of(&previous, LAST_SUCCESS, command).unwrap_or(0.0)
            };
            let run = RunValues {
                started_at: self.started_at,
                duration,
                exit_code,
                last_success,
            };
            let new = families(self.command, &run, &self.lock());
            text::render(&text::merge(previous, command, new))
        })
    }
}

const LAST_SUCCESS: &str = "gitbak_last_success_timestamp_seconds";

/// The values of a run that are not counts.
struct RunValues {
    started_at: f64,
    duration: f64,
    exit_code: i32,
    /// Unix seconds; 0 when no run of this command is known to have succeeded.
    last_success: f64,
}

/// This run's series, every one labelled with its command.
fn families(command: MetricsCommand, run: &RunValues, counts: &Counts) -> Families {
    let command = command.as_str();
    let mut families = Families::new();
    let mut gauge = |name: &str, help: &str, samples: Vec<(Vec<(&str, &str)>, f64)>| {
        if samples.is_empty() {
            return;
        }
        let samples = samples
            .into_iter()
            .map(|(mut labels, value)| {
                labels.insert(0, ("command", command));
                sample(name, &labels, value)
            })
            .collect();
        families.insert(
            name.to_owned(),
            Family {
                help: help.to_owned(),
                kind: "gauge".to_owned(),
                samples,
            },
        );
    };
    let one = |value: f64| vec![(Vec::new(), value)];
    gauge(
        "gitbak_last_run_timestamp_seconds",
        "When the last run started, in Unix seconds.",
        one(run.started_at),
    );
    gauge(
        "gitbak_last_run_duration_seconds",
        "How long the last run took.",
        one(run.duration),
    );
    gauge(
        "gitbak_last_run_exit_code",
        "The exit code of the last run (0 success, 1 failure, 2 usage, 3 broken backup found, 130 interrupted).",
        one(f64::from(run.exit_code)),
    );
    gauge(
        "gitbak_last_run_success",
        "1 if the last run exited 0, else 0.",
        one(if run.exit_code == 0 { 1.0 } else { 0.0 }),
    );
    gauge(
        LAST_SUCCESS,
        "When the last run that exited 0 ended, in Unix seconds (0: none known).",
        one(run.last_success),
    );
    let mut repositories = Vec::new();
    let mut ended: BTreeMap<&str, u64> = BTreeMap::new();
    for ((storage, result), count) in &counts.results {
        *ended.entry(storage).or_default() += count;
        repositories.push((
            vec![("storage", storage.as_str()), ("result", result.as_str())],
            *count as f64,
        ));
    }
    for (storage, started) in &counts.started {
        let interrupted = started.saturating_sub(ended.get(storage.as_str()).copied().unwrap_or(0));
        if interrupted > 0 {
            repositories.push((
                vec![
                    ("storage", storage.as_str()),
                    ("result", JobResult::Interrupted.as_str()),
                ],
                interrupted as f64,
            ));
        }
    }
    if command == "create" {
        gauge(
            "gitbak_last_run_bytes_written",
            "Bytes the last create wrote to the backup location (bundles, refs files, hooks archives).",
            one(counts.bytes as f64),
        );
    }
    if command == "restore" {
        gauge(
            "gitbak_last_run_bytes_read",
            "Bytes of backup files the last restore read.",
            one(counts.bytes as f64),
        );
    }
    gauge(
        "gitbak_last_run_repositories",
        "Repositories of the last run by storage and result (completed, unchanged, empty, non_existent, skipped, failed, interrupted).",
        repositories,
    );
    if let Some(verify) = &counts.verify {
        for (name, help, value) in [
            (
                "gitbak_last_run_checked_backups",
                "Backup ids verify checked.",
                verify.backups as f64,
            ),
            (
                "gitbak_last_run_checked_repositories",
                "Repositories verify checked.",
                verify.repositories as f64,
            ),
            (
                "gitbak_last_run_checked_files",
                "Files verify found on storage.",
                verify.files as f64,
            ),
            (
                "gitbak_last_run_checked_bytes",
                "Bytes of the files verify found on storage.",
                verify.bytes as f64,
            ),
            (
                "gitbak_last_run_broken_backups",
                "Backups verify found broken.",
                verify.broken_backups as f64,
            ),
            (
                "gitbak_last_run_broken_repositories",
                "Repositories with a broken backup.",
                verify.broken_repositories as f64,
            ),
            (
                "gitbak_last_run_broken_files",
                "Files verify found missing, truncated or changed.",
                verify.broken_files as f64,
            ),
        ] {
            gauge(name, help, one(value));
        }
        let by_storage = |pick: fn(&(u64, u64)) -> u64| {
            counts
                .verified
                .iter()
                .map(|(storage, counts)| (vec![("storage", storage.as_str())], pick(counts) as f64))
                .collect()
        };
        gauge(
            "gitbak_last_run_checked_repositories_by_storage",
            "Repositories verify checked, by storage.",
            by_storage(|(checked, _)| *checked),
        );
        gauge(
            "gitbak_last_run_broken_repositories_by_storage",
            "Repositories with a broken backup, by storage.",
            by_storage(|(_, broken)| *broken),
        );
    }
    families
}

/// A storage name as the `storage` label shows it. Job lines name their
/// storage; one that is not a valid name must not add a series per typo.
fn storage_label(name: &str) -> String {
    match StorageName::parse(name) {
        Ok(_) => name.to_owned(),
        Err(_) => "(invalid)".to_owned(),
    }
}

/// A run's progress, counted by a `Recorder` on its way to the log.
struct Observed {
    progress: Arc<dyn Progress>,
    metrics: Arc<Recorder>,
}

impl Progress for Observed {
    fn job_event(&self, command: CommandName, job: &Job, event: Event<'_>) {
        self.metrics.count(job, &event);
        self.progress.job_event(command, job, event);
    }

    fn run_warning(&self, message: &str, fields: &[(&str, &str)]) {
        self.progress.run_warning(message, fields);
    }

    fn jobs_read(&self, count: usize, complete: bool) {
        self.progress.jobs_read(count, complete);
    }
}

fn unix_seconds() -> f64 {
    let elapsed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    // Milliseconds are enough, and keep the file short.
    (elapsed.as_millis() as f64) / 1000.0
}

#[cfg(test)]
mod tests;
