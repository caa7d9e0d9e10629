//! gitbak's own front end around a create or a restore: how the run
//! reports (log format, progress, summary) and the mistakes it catches
//! before it waits or after it ends (nothing piped in, an empty job list).
//! gitaly mode keeps gitaly-backup's output and does not come here.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Map;
use tokio_util::sync::CancellationToken;

use super::args::{LogFormatArg, OutputArgs};
use super::output::progress::{self, Console};
use super::output::summary::{self, Summary};
use super::output::{Log, LogFormat};
use crate::cmd;
use crate::cmd::create::CreateOptions;
use crate::cmd::restore::RestoreOptions;
use crate::exit::{Status, UsageError};
use crate::job::progress::CommandName;
use crate::job::scheduler::RunReport;
use crate::metrics::Recorder;

/// What create and restore say when started at a terminal with nothing
/// piped in, instead of waiting for input nobody will type.
const HOW_TO_FEED: &str =
    "reads the repositories to work on from stdin, one JSON object per line, \
and stdin is a terminal; pipe them in, e.g. \
echo '{\"storage_name\":\"default\",\"relative_path\":\"@hashed/ab/cd/abcd.git\"}' | gitbak";

/// How the run reports, from the command line and the terminal.
struct Output {
    console: Arc<Console>,
    /// The progress log line's timer; dropped to stop it.
    ticker: Option<tokio_util::sync::DropGuard>,
    begin: Instant,
    allow_empty: bool,
    /// Jobs come from `--discover`, not stdin: an empty list means no
    /// repository was found.
    discover: bool,
}

impl Output {
    fn new(args: &OutputArgs, command: CommandName, discover: bool) -> Self {
        let stdout_tty = std::io::stdout().is_terminal();
        let format = match args.log_format {
            Some(LogFormatArg::Json) => LogFormat::Json,
            Some(LogFormatArg::Text) => LogFormat::Text,
            None if stdout_tty => LogFormat::Text,
            None => LogFormat::Json,
        };
        // Diagnostics (-v) go to stderr unsynchronised with the bars.
        let show_display =
            !args.no_progress && args.verbose == 0 && std::io::stderr().is_terminal();
        let display = show_display.then(progress::display);
        // Log lines on the display's terminal are written while it is cleared.
        let log_display = display.clone().filter(|_| stdout_tty);
        let log = Arc::new(Log::stdout(format, args.quiet, log_display));
        let console = Arc::new(Console::new(log, command, display));
        let ticker = (!show_display && !args.no_progress)
            .then(|| progress::log_every(console.clone(), progress::LOG_EVERY));
        Self {
            console,
            ticker,
            begin: Instant::now(),
            allow_empty: args.allow_empty,
            discover,
        }
    }

    fn log(&self) -> &Log {
        self.console.log()
    }

    /// Stops progress and prints the summary; the run's status.
    fn finish(mut self, command: CommandName, report: &RunReport, resume: String) -> Status {
        self.ticker.take();
        self.console.finish();
        summary::print(
            self.log(),
            &Summary {
                command,
                report,
                elapsed: self.begin.elapsed(),
                resume,
            },
        );
        let empty = report.jobs_read == 0 && report.input_error.is_none() && !report.interrupted;
        if empty && !self.allow_empty {
            let message = match command {
                CommandName::Create if self.discover => "create: --discover found no repository \
                    in the configured storages; check --storage or the Gitaly config, or pass \
                    --allow-empty if that is expected",
                CommandName::Create => "create: the job list was empty, nothing was backed up; \
                    pass --allow-empty if that is expected, or --discover to back up every repository",
                CommandName::Restore => "restore: the job list was empty, nothing was restored; \
                    pass --allow-empty if that is expected",
            };
            self.log().line("error", message, Map::new());
            return Status::Usage;
        }
        super::status_of(report, false)
    }
}

/// Refuses to wait on a terminal nobody will type jobs into.
fn check_stdin(command: CommandName) -> Result<(), UsageError> {
    if std::io::stdin().is_terminal() {
        let hint = match command {
            CommandName::Create => {
                " create --path DIR; or use --discover to back up every repository"
            }
            CommandName::Restore => " restore --path DIR",
        };
        return Err(UsageError(format!(
            "{} {HOW_TO_FEED}{hint}",
            command.as_str()
        )));
    }
    Ok(())
}

/// `gitbak create`.
pub async fn create(
    args: &OutputArgs,
    setup: cmd::Setup,
    options: CreateOptions,
    discover: bool,
    recorder: Option<Arc<Recorder>>,
    cancel: CancellationToken,
) -> anyhow::Result<Status> {
    if !discover {
        check_stdin(CommandName::Create)?;
    }
    let output = Output::new(args, CommandName::Create, discover);
    let progress = super::metrics::observed(output.console.clone(), recorder);
    let ctx = cmd::Context::open(setup, progress, cancel).await?;
    let id = options.id.clone();
    let mut fields = Map::new();
    fields.insert("backup_id".into(), id.to_string().into());
    fields.insert("location".into(), ctx.location.clone().into());
    output.log().line(
        "info",
        &format!("create: backup {id} to {}", ctx.location),
        fields,
    );
    let report = super::run_create(&ctx, options, discover).await?;
    if let Err(error) = &report.marker {
        output.log().line(
            "error",
            &format!("create: write backup id marker: {error}"),
            Map::new(),
        );
    }
    let resume = format!("gitbak create --id {id} with the same options and job list");
    let status = output.finish(CommandName::Create, &report.run, resume);
    Ok(match status {
        Status::Success if report.marker.is_err() => Status::Failure,
        status => status,
    })
}

/// `gitbak restore`.
pub async fn restore(
    args: &OutputArgs,
    setup: cmd::Setup,
    options: RestoreOptions,
    all: bool,
    recorder: Option<Arc<Recorder>>,
    cancel: CancellationToken,
) -> anyhow::Result<Status> {
    if !all {
        check_stdin(CommandName::Restore)?;
    }
    let output = Output::new(args, CommandName::Restore, all);
    let progress = super::metrics::observed(output.console.clone(), recorder);
    let ctx = cmd::Context::open(setup, progress, cancel).await?;
    let Some(report) = super::run_restore(&ctx, options, all, output.log()).await? else {
        return Ok(Status::Interrupted);
    };
    output.log().removals(&report.removed);
    let resume = "the same gitbak restore command with the same job list".to_owned();
    Ok(output.finish(CommandName::Restore, &report.run, resume))
}
