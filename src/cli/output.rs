//! What gitbak prints: gitaly-backup's JSON log lines on stdout (spec §6.2)
//! or, for a person at a terminal, text lines (`text`); a progress display
//! on stderr (`progress`); and the run's summary (`summary`; gitaly-backup's
//! failure summary, §6.3, here). All of them consumers of the run's events;
//! none does any work.
//!
//! Two styles of JSON: gitbak's own, which adds a skipped job's `reason`,
//! and gitaly mode's, byte for byte what gitaly-backup prints (Go's
//! HTML-safe escaping, no extra fields, a summary ending in a newline),
//! because Rails and log pipelines parse it.

pub mod progress;
pub mod summary;
mod text;

use std::io::Write;
use std::sync::Mutex;

use serde_json::{Map, Value};

use crate::cmd::restore::{RemovalReason, RemovedRepository};
use crate::job::progress::{CommandName, Event, Progress};
use crate::job::scheduler::RunReport;
use crate::job::{bounded, Job, ECHO_LIMIT};
use crate::layout::civil_from_unix;

/// The longest message (an error, a warning) a log line carries. Messages
/// are one line of what went wrong; input values in them are cut to
/// `ECHO_LIMIT` first, this catches what quotes them in another form.
const MESSAGE_LIMIT: usize = 8 * ECHO_LIMIT;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, keys in alphabetical order, as logrus'
    /// JSON formatter writes them: for log pipelines (and Rails).
    Json,
    /// Time, level, repository, message: for a person (`text`).
    Text,
}

/// Writes the log on stdout, one line per event.
pub struct Log {
    out: Mutex<Box<dyn Write + Send>>,
    pid: u32,
    /// gitaly-backup's exact lines (gitaly mode) rather than gitbak's.
    gitaly: bool,
    format: LogFormat,
    /// `--quiet`: only warnings and errors.
    quiet: bool,
    /// The progress display on the same terminal: lines are written while
    /// it is cleared, so they never land in the middle of a bar.
    display: Option<indicatif::MultiProgress>,
}

impl Log {
    /// gitbak's own log on stdout.
    pub fn stdout(
        format: LogFormat,
        quiet: bool,
        display: Option<indicatif::MultiProgress>,
    ) -> Self {
        Self {
            out: Mutex::new(Box::new(std::io::stdout())),
            pid: std::process::id(),
            gitaly: false,
            format,
            quiet,
            display,
        }
    }

    /// gitaly mode's log: exactly gitaly-backup's lines.
    pub fn gitaly_stdout() -> Self {
        Self {
            gitaly: true,
            ..Self::stdout(LogFormat::Json, false, None)
        }
    }

    #[cfg(test)]
    fn for_test(out: Box<dyn Write + Send>, pid: u32, gitaly: bool) -> Self {
        Self {
            out: Mutex::new(out),
            pid,
            gitaly,
            format: LogFormat::Json,
            quiet: false,
            display: None,
        }
    }

    pub fn line(&self, level: &str, msg: &str, fields: Map<String, Value>) {
        if self.quiet && level == "info" {
            return;
        }
        let mut text = match self.format {
            LogFormat::Text => text::line(&timestamp(), level, msg, &fields),
            LogFormat::Json => {
                let mut entry = fields;
                entry.insert("level".into(), level.into());
                entry.insert("msg".into(), msg.into());
                entry.insert("pid".into(), self.pid.into());
                entry.insert("time".into(), timestamp().into());
                let text = Value::Object(entry).to_string();
                if self.gitaly {
                    go_html_escape(&text)
                } else {
                    text
                }
            }
        };
        text.push('\n');
        let write = || {
            let mut out = self
                .out
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            // Nowhere to report a failed log write; a closed stdout must not fail the backup.
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        };
        match &self.display {
            Some(display) => display.suspend(write),
            None => write(),
        }
    }

    /// What a restore removed at its end, counted, each repository named
    /// with why: not restored from a `-remove-all-repositories` storage,
    /// or without any backup (gitaly mode).
    pub fn removals(&self, removed: &[RemovedRepository]) {
        if removed.is_empty() {
            return;
        }
        let noun = if removed.len() == 1 {
            "repository"
        } else {
            "repositories"
        };
        let mut msg = format!("restore: removed {} {noun}:", removed.len());
        for repository in removed {
            let why = match repository.reason {
                RemovalReason::NotRestored => "not in this restore (-remove-all-repositories)",
                RemovalReason::NoBackup => "no backup of it was found",
            };
            msg.push_str(&format!(
                "\n - {} (storage {}): {why}",
                echo(&repository.relative_path),
                echo(&repository.storage_name)
            ));
        }
        self.line("info", &msg, Map::new());
    }

    /// gitaly mode's closing lines: the input error that stopped the run,
    /// and the line listing every failed repository. gitbak's own summary
    /// is `summary::print`.
    pub fn summary(&self, command: CommandName, report: &RunReport) {
        if let Some(error) = &report.input_error {
            self.line(
                "error",
                &format!("{}: {error}", command.as_str()),
                Map::new(),
            );
        }
        if report.interrupted {
            self.line(
                "error",
                &format!(
                    "{}: interrupted; rerun with the same --id to resume",
                    command.as_str()
                ),
                Map::new(),
            );
        }
        self.failures(command, report);
    }

    /// The error line listing every failed repository, gitaly's `pipeline:`
    /// line (both styles).
    pub fn failures(&self, command: CommandName, report: &RunReport) {
        if report.failures.is_empty() {
            return;
        }
        let mut msg = format!(
            "{}: pipeline: {} failures encountered:",
            command.as_str(),
            report.failures.len()
        );
        for (job, error) in &report.failures {
            msg.push_str(&format!("\n - {}", echo(&job.relative_path)));
            if !job.gl_project_path.is_empty() {
                msg.push_str(&format!(" ({})", echo(&job.gl_project_path)));
            }
            msg.push_str(&format!(": {}", message(job, error)));
        }
        if self.gitaly {
            // gitaly-backup ends every entry, the last one too, with a newline.
            msg.push('\n');
        }
        self.line("error", &msg, Map::new());
    }
}

/// An input value as a log line shows it: at most `ECHO_LIMIT` bytes.
pub(crate) fn echo(value: &str) -> String {
    bounded(value, ECHO_LIMIT).into_owned()
}

/// A message about `job` as a log line shows it: the job's values it
/// quotes cut to `ECHO_LIMIT`, the whole to `MESSAGE_LIMIT`.
pub(crate) fn message(job: &Job, text: &str) -> String {
    let mut text = text.to_owned();
    for value in [&job.relative_path, &job.gl_project_path, &job.storage_name] {
        if value.len() <= ECHO_LIMIT {
            continue;
        }
        let short = echo(value);
        text = text.replace(value.as_str(), &short);
        // Quoted with `{:?}`, as most errors quote paths.
        let quoted = format!("{value:?}");
        let quoted = &quoted[1..quoted.len() - 1];
        if quoted != value.as_str() {
            text = text.replace(quoted, format!("{:?}", short.as_str()).trim_matches('"'));
        }
    }
    bounded(&text, MESSAGE_LIMIT).into_owned()
}

fn job_fields(command: CommandName, job: &Job) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert("command.name".into(), command.as_str().into());
    fields.insert("storage_name".into(), echo(&job.storage_name).into());
    fields.insert("relative_path".into(), echo(&job.relative_path).into());
    fields.insert("gl_project_path".into(), echo(&job.gl_project_path).into());
    fields
}

impl Progress for Log {
    fn job_event(&self, command: CommandName, job: &Job, event: Event<'_>) {
        let mut fields = job_fields(command, job);
        let name = command.as_str();
        match event {
            Event::Started => self.line("info", &format!("started {name}"), fields),
            Event::Completed { details } => {
                // gitaly-backup's line has no such fields (spec §6.2).
                if let Some(details) = details.filter(|_| !self.gitaly) {
                    for (field, value) in [
                        ("backup_id", &details.backup_id),
                        ("backup_time", &details.backup_time),
                    ] {
                        if let Some(value) = value {
                            fields.insert(field.into(), echo(value).into());
                        }
                    }
                }
                self.line("info", &format!("completed {name}"), fields)
            }
            Event::Skipped { reason } => {
                // gitaly-backup logs no reason (spec §6.2); Rails' parsers expect its fields only.
                if !self.gitaly {
                    fields.insert("reason".into(), message(job, reason).into());
                }
                self.line("warning", &format!("skipped {name}"), fields);
            }
            Event::Failed { error } => {
                fields.insert("error".into(), message(job, error).into());
                self.line("error", &format!("{name} failed"), fields);
            }
            Event::Warning { message: text } => self.line("warning", &message(job, text), fields),
            // gitaly-backup logs nothing for a job it stops (spec §6.2).
            Event::Interrupted if self.gitaly => {}
            Event::Interrupted => self.line("warning", &format!("{name} interrupted"), fields),
        }
    }

    fn run_warning(&self, message: &str, fields: &[(&str, &str)]) {
        let fields = fields
            .iter()
            .map(|(name, value)| ((*name).to_owned(), Value::from(*value)))
            .collect();
        self.line("warning", message, fields);
    }
}

/// Go's `encoding/json` escaping on top of serde_json's: `<`, `>`, `&`
/// (HTML-safe) and U+2028, U+2029 as `\u` escapes. These characters only
/// occur inside JSON strings, so replacing them in the text is exact.
fn go_html_escape(json: &str) -> String {
    let mut escaped = String::with_capacity(json.len());
    for character in json.chars() {
        match character {
            '<' => escaped.push_str("\\u003c"),
            '>' => escaped.push_str("\\u003e"),
            '&' => escaped.push_str("\\u0026"),
            '\u{2028}' => escaped.push_str("\\u2028"),
            '\u{2029}' => escaped.push_str("\\u2029"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// `2006-01-02T15:04:05.000Z`: UTC with milliseconds.
fn timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let (y, mo, d, h, mi, s) = civil_from_unix(now.as_secs() as i64);
    format!(
        "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}Z",
        now.subsec_millis()
    )
}

#[cfg(test)]
mod tests;
