//! `--metrics-file` at the edge: the option, the `metrics::Recorder` a
//! command's run gets when it is set, and writing the file when the run
//! ends, however it ends (success, failure, a start-up error, an
//! interrupt). Command-line errors clap reports itself (an unknown
//! option), and in gitaly mode a command line gitaly-backup would refuse,
//! end the program before this and write nothing. Gitaly mode reads the
//! path from `GITBAK_METRICS_FILE` (backup.rake passes no gitbak flags).

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::Command;
use crate::exit::Status;
use crate::job::progress::Progress;
use crate::metrics::{MetricsCommand, Recorder};

#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Write a Prometheus textfile for node_exporter here at the end of the run (atomically; other commands' series in it are kept).
    #[arg(long, env = "GITBAK_METRICS_FILE", value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,
}

/// A recorder for `command`, started now, when it writes metrics and
/// `--metrics-file` is set.
pub(super) fn recorder(command: &Command) -> Option<Arc<Recorder>> {
    let (name, args) = match command {
        Command::Create(args) => (MetricsCommand::Create, &args.common.metrics),
        Command::Restore(args) => (MetricsCommand::Restore, &args.common.metrics),
        Command::Verify(args) => (MetricsCommand::Verify, &args.metrics),
        _ => return None,
    };
    let path = args.metrics_file.clone()?;
    Some(Recorder::start(name, path))
}

/// The run's progress (the log, a console), counted by the recorder if
/// there is one.
pub(super) fn observed(
    progress: Arc<dyn Progress>,
    recorder: Option<Arc<Recorder>>,
) -> Arc<dyn Progress> {
    match recorder {
        Some(recorder) => recorder.observe(progress),
        None => progress,
    }
}

/// Writes the file with the exit code the run ends with (gitaly mode's
/// when `gitaly`, as the process exits with it). A file that cannot be
/// written is reported on stderr (only with `GITBAK_LOG` in gitaly mode,
/// whose stderr stays empty) and leaves the exit code alone: the code
/// tells the run's own outcome, and a file not updated shows as a missed
/// success (and an old `node_textfile_mtime_seconds`).
pub(super) fn finish(
    recorder: Option<Arc<Recorder>>,
    result: &anyhow::Result<Status>,
    gitaly: bool,
) {
    let Some(recorder) = recorder else {
        return;
    };
    let code = match (result, gitaly) {
        (Ok(status), false) => status.code(),
        (Ok(status), true) => crate::exit::gitaly_code(*status),
        (Err(error), false) => crate::exit::code_for_error(error),
        (Err(error), true) => crate::exit::code_for_gitaly_error(error),
    };
    if let Err(error) = recorder.write(code) {
        if gitaly {
            tracing::error!("{error}");
        } else {
            eprintln!("gitbak: {error}");
        }
    }
}
