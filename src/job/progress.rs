//! What happens to each job, as events; knows nothing of terminals or log
//! formats (`cli::output` renders them).

use super::Job;

/// The command a run belongs to, as gitaly names it in log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandName {
    Create,
    Restore,
}

impl CommandName {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Restore => "restore",
        }
    }
}

/// What a completed job's log line tells beyond "completed", in gitbak's
/// log style only: gitaly mode's lines stay exactly gitaly-backup's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Completion {
    /// The backup a restore restored, so an administrator sees what they got.
    pub backup_id: Option<String>,
    /// When that backup was taken, RFC 3339.
    pub backup_time: Option<String>,
    /// What kind of completion it was, for the run's summary.
    pub kind: Done,
    /// Bytes this job wrote (create), or read: its backup's files (restore).
    pub bytes: u64,
}

/// The ways a job completes, counted apart in the summary: a typo in a
/// `relative_path` shows up as non-existent rather than as a success.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Done {
    /// Backed up (create) or restored (restore).
    #[default]
    Written,
    /// An incremental create found nothing changed: no new step.
    Unchanged,
    /// The repository has no refs.
    Empty,
    /// No repository at that path (create), or the backup says there was none (restore).
    NonExistent,
}

#[derive(Debug)]
pub enum Event<'a> {
    Started,
    Completed {
        details: Option<&'a Completion>,
    },
    /// Not an error: already done, or not for this node.
    Skipped {
        reason: &'a str,
    },
    Failed {
        error: &'a str,
    },
    /// Something the administrator should know that did not fail the job.
    Warning {
        message: &'a str,
    },
    /// The run was interrupted (SIGINT, SIGTERM) while this job ran: its
    /// closing line. Jobs that had not started get no event at all.
    Interrupted,
}

pub trait Progress: Send + Sync {
    fn job_event(&self, command: CommandName, job: &Job, event: Event<'_>);

    /// Something about the whole run the administrator should know (an
    /// ignored setting); no job involved. `fields` add context (an error,
    /// a storage name) as gitaly-backup's log lines carry it.
    fn run_warning(&self, _message: &str, _fields: &[(&str, &str)]) {}

    /// How many jobs were read so far; `complete` once the source has
    /// ended (or the run stopped reading), so the total is known.
    fn jobs_read(&self, _count: usize, _complete: bool) {}

    /// Reading a location's catalogue (list, prune, verify): manifests
    /// read of those listed so far; `listed_all` once the listing ended.
    fn catalog_read(&self, _read: usize, _listed: usize, _listed_all: bool) {}
}

/// Progress that goes nowhere, for unit tests.
pub struct Silent;

impl Progress for Silent {
    fn job_event(&self, _: CommandName, _: &Job, _: Event<'_>) {}
}
