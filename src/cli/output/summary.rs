//! The summary gitbak prints at the end of every run, success included:
//! repositories by outcome, bytes, elapsed time, the repositories that do
//! not exist and those that failed (with a one-line reason), and after an
//! interruption how to resume. Its counts are `job::tally::Counts`, a plain
//! struct other renderings (a metrics file) can share. Does no work.

use std::time::Duration;

use serde_json::{Map, Value};

use super::progress::clock;
use super::{echo, Log};
use crate::job::progress::CommandName;
use crate::job::scheduler::RunReport;
use crate::job::tally::Counts;

/// What the summary tells about a run.
pub struct Summary<'a> {
    pub command: CommandName,
    pub report: &'a RunReport,
    pub elapsed: Duration,
    /// The command line that resumes an interrupted run (create: with
    /// its backup id).
    pub resume: String,
}

/// Prints `summary` through the log, so it follows the log format.
pub fn print(log: &Log, summary: &Summary<'_>) {
    let Summary {
        command,
        report,
        elapsed,
        resume,
    } = summary;
    let name = command.as_str();
    if let Some(error) = &report.input_error {
        log.line("error", &format!("{name}: {error}"), Map::new());
    }
    let ok = report.failures.is_empty() && report.input_error.is_none() && !report.interrupted;
    let level = if ok { "info" } else { "error" };
    log.line(
        level,
        &format!(
            "{name}: {}",
            counts_line(*command, &report.counts, *elapsed)
        ),
        counts_fields(&report.counts, *elapsed),
    );
    if !report.non_existent.is_empty() {
        let count = report.counts.non_existent;
        let what = match command {
            CommandName::Create => "not found (a typo in relative_path?), recorded as non-existent",
            CommandName::Restore => "did not exist when backed up, nothing restored",
        };
        let mut msg = format!("{name}: {count} {} {what}:", repositories(count));
        for job in &report.non_existent {
            msg.push_str(&format!(
                "\n - {} (storage {})",
                echo(&job.relative_path),
                echo(&job.storage_name)
            ));
        }
        if count > report.non_existent.len() {
            msg.push_str(&format!(
                "\n - and {} more",
                count - report.non_existent.len()
            ));
        }
        log.line("warning", &msg, Map::new());
    }
    log.failures(*command, report);
    if report.interrupted {
        let running = report.counts.interrupted;
        log.line(
            "error",
            &format!(
                "{name}: interrupted ({running} {} stopped while running); to resume, run: {resume}",
                repositories(running)
            ),
            Map::new(),
        );
    }
}

fn repositories(count: usize) -> &'static str {
    if count == 1 {
        "repository"
    } else {
        "repositories"
    }
}

/// `40 repositories in 1:02: 35 backed up, 2 unchanged, 1 failed; 1.20 GiB written`.
fn counts_line(command: CommandName, counts: &Counts, elapsed: Duration) -> String {
    let written = match command {
        CommandName::Create => "backed up",
        CommandName::Restore => "restored",
    };
    let parts: Vec<String> = [
        (counts.written, written),
        (counts.unchanged, "unchanged"),
        (counts.empty, "empty"),
        (counts.non_existent, "non-existent"),
        (counts.already_done, "already done"),
        (counts.skipped, "skipped"),
        (counts.failed, "failed"),
        (counts.interrupted, "interrupted"),
    ]
    .iter()
    .filter(|(count, _)| *count > 0)
    .map(|(count, label)| format!("{count} {label}"))
    .collect();
    let total = counts.finished();
    let mut text = format!("{total} {} in {}", repositories(total), clock(elapsed));
    if !parts.is_empty() {
        text.push_str(&format!(": {}", parts.join(", ")));
    }
    let bytes = indicatif::HumanBytes(counts.bytes);
    match command {
        CommandName::Create => text.push_str(&format!("; {bytes} written")),
        // A restore's bytes are those of the backup files it read.
        CommandName::Restore => text.push_str(&format!("; {bytes} read")),
    }
    text
}

/// The counts as the JSON line's fields, for log pipelines.
fn counts_fields(counts: &Counts, elapsed: Duration) -> Map<String, Value> {
    let mut fields = Map::new();
    for (name, value) in [
        ("written", counts.written),
        ("unchanged", counts.unchanged),
        ("empty", counts.empty),
        ("non_existent", counts.non_existent),
        ("already_done", counts.already_done),
        ("skipped", counts.skipped),
        ("failed", counts.failed),
        ("interrupted", counts.interrupted),
    ] {
        fields.insert(name.into(), value.into());
    }
    fields.insert("bytes".into(), counts.bytes.into());
    fields.insert("elapsed_seconds".into(), elapsed.as_secs_f64().into());
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counts_line_names_only_what_happened() {
        let counts = Counts {
            written: 35,
            unchanged: 2,
            non_existent: 1,
            failed: 1,
            bytes: 1 << 30,
            ..Counts::default()
        };
        assert_eq!(
            counts_line(CommandName::Create, &counts, Duration::from_secs(62)),
            "39 repositories in 1:02: 35 backed up, 2 unchanged, 1 non-existent, 1 failed; 1.00 GiB written"
        );
        assert_eq!(
            counts_line(CommandName::Restore, &Counts::default(), Duration::ZERO),
            "0 repositories in 0:00; 0 B read"
        );
    }
}
