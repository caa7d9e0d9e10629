//! Exit codes: the one table, and the mapping from outcomes to it. No exit
//! code is chosen anywhere else.

/// Every repository done (or skipped as done).
pub const SUCCESS: i32 = 0;
/// Some repository failed, or the job input was malformed.
pub const FAILURE: i32 = 1;
/// Usage or configuration error: nothing was attempted.
pub const USAGE: i32 = 2;
/// `verify` checked everything it could and found a backup broken: a
/// finding about the backups, not a failure of the run (which is 1).
pub const BROKEN: i32 = 3;
/// Interrupted by SIGINT or SIGTERM.
pub const INTERRUPTED: i32 = 130;

/// How a run ended, from the command's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success,
    Failure,
    Usage,
    /// `verify` found a broken backup.
    Broken,
    Interrupted,
}

impl Status {
    pub fn code(self) -> i32 {
        match self {
            Self::Success => SUCCESS,
            Self::Failure => FAILURE,
            Self::Usage => USAGE,
            Self::Broken => BROKEN,
            Self::Interrupted => INTERRUPTED,
        }
    }
}

/// Errors raised before any repository was touched.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The exit code of a run in gitaly mode: gitaly-backup exits 1 for usage
/// and configuration errors too, and Rails expects it.
pub fn gitaly_code(status: Status) -> i32 {
    match status {
        Status::Usage => FAILURE,
        other => other.code(),
    }
}

/// The exit code for an error that ended a run in gitaly mode: 1, as for
/// gitaly-backup, whatever the error (a broken pipe still exits 0).
pub fn code_for_gitaly_error(error: &anyhow::Error) -> i32 {
    match code_for_error(error) {
        SUCCESS => SUCCESS,
        _ => FAILURE,
    }
}

/// The exit code for an error that ended the program.
pub fn code_for_error(error: &anyhow::Error) -> i32 {
    if error.chain().any(|cause| cause.is::<UsageError>()) {
        return USAGE;
    }
    let broken_pipe = error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    });
    if broken_pipe {
        SUCCESS
    } else {
        FAILURE
    }
}
