//! What gitbak prints: gitaly-backup's JSON log lines on stdout (spec §6.2)
//! and the final failure summary (§6.3). Does no work.

use std::io::Write;
use std::sync::Mutex;

use serde_json::{Map, Value};

use crate::job::progress::{CommandName, Event, Progress};
use crate::job::scheduler::RunReport;
use crate::job::Job;
use crate::layout::civil_from_unix;

/// Writes one JSON object per line, keys in alphabetical order, as logrus'
/// JSON formatter does.
pub struct JsonLog {
    out: Mutex<Box<dyn Write + Send>>,
    pid: u32,
}

impl JsonLog {
    pub fn stdout() -> Self {
        Self {
            out: Mutex::new(Box::new(std::io::stdout())),
            pid: std::process::id(),
        }
    }

    pub fn line(&self, level: &str, msg: &str, fields: Map<String, Value>) {
        let mut entry = fields;
        entry.insert("level".into(), level.into());
        entry.insert("msg".into(), msg.into());
        entry.insert("pid".into(), self.pid.into());
        entry.insert("time".into(), timestamp().into());
        let mut text = Value::Object(entry).to_string();
        text.push('\n');
        let mut out = self
            .out
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Nowhere to report a failed log write; a closed stdout must not fail the backup.
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }

    /// gitaly's closing error line listing every failed repository, or the
    /// input error that stopped the run.
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
        if report.failures.is_empty() {
            return;
        }
        let mut msg = format!(
            "{}: pipeline: {} failures encountered:",
            command.as_str(),
            report.failures.len()
        );
        for (job, error) in &report.failures {
            msg.push_str(&format!("\n - {}", job.relative_path));
            if !job.gl_project_path.is_empty() {
                msg.push_str(&format!(" ({})", job.gl_project_path));
            }
            msg.push_str(&format!(": {error}"));
        }
        self.line("error", &msg, Map::new());
    }
}

fn job_fields(command: CommandName, job: &Job) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert("command.name".into(), command.as_str().into());
    fields.insert("storage_name".into(), job.storage_name.clone().into());
    fields.insert("relative_path".into(), job.relative_path.clone().into());
    fields.insert("gl_project_path".into(), job.gl_project_path.clone().into());
    fields
}

impl Progress for JsonLog {
    fn job_event(&self, command: CommandName, job: &Job, event: Event<'_>) {
        let mut fields = job_fields(command, job);
        let name = command.as_str();
        match event {
            Event::Started => self.line("info", &format!("started {name}"), fields),
            Event::Completed => self.line("info", &format!("completed {name}"), fields),
            Event::Skipped { reason } => {
                fields.insert("reason".into(), reason.into());
                self.line("warning", &format!("skipped {name}"), fields);
            }
            Event::Failed { error } => {
                fields.insert("error".into(), error.into());
                self.line("error", &format!("{name} failed"), fields);
            }
            Event::Warning { message } => self.line("warning", message, fields),
        }
    }

    fn run_warning(&self, message: &str) {
        self.line("warning", message, Map::new());
    }
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
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_match_gitaly_format() {
        let buffer = Buffer::default();
        let log = JsonLog {
            out: Mutex::new(Box::new(buffer.clone())),
            pid: 4242,
        };
        let job = Job {
            storage_name: "default".into(),
            relative_path: "@hashed/x.git".into(),
            gl_project_path: "group/project".into(),
            ..Job::default()
        };
        log.job_event(CommandName::Create, &job, Event::Started);
        let mut report = RunReport::default();
        report.failures.push((job.clone(), "boom".into()));
        report.failures.push((
            Job {
                relative_path: "b.git".into(),
                ..Job::default()
            },
            "bang".into(),
        ));
        log.summary(CommandName::Restore, &report);
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let started: Value = serde_json::from_str(lines[0]).unwrap();
        assert!(lines[0].starts_with(r#"{"command.name":"create","gl_project_path":"group/project","level":"info","msg":"started create","pid":4242,"relative_path":"@hashed/x.git","storage_name":"default","time":""#));
        assert_eq!(
            started["time"].as_str().unwrap().len(),
            "2006-01-02T15:04:05.000Z".len()
        );
        let summary: Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(
            summary["msg"],
            "restore: pipeline: 2 failures encountered:\n - @hashed/x.git (group/project): boom\n - b.git: bang"
        );
        assert_eq!(summary["level"], "error");
    }
}
