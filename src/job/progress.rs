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
    /// Bytes a create wrote to the location for this repository (its new
    /// step's files), for the metrics; not logged.
    pub bytes_written: Option<u64>,
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
}

pub trait Progress: Send + Sync {
    fn job_event(&self, command: CommandName, job: &Job, event: Event<'_>);

    /// Something about the whole run the administrator should know (an
    /// ignored setting); no job involved. `fields` add context (an error,
    /// a storage name) as gitaly-backup's log lines carry it.
    fn run_warning(&self, _message: &str, _fields: &[(&str, &str)]) {}
}

/// Progress that goes nowhere, for unit tests.
pub struct Silent;

impl Progress for Silent {
    fn job_event(&self, _: CommandName, _: &Job, _: Event<'_>) {}
}
