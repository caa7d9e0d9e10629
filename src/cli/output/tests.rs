//! The log lines, byte for byte, in both styles.

use super::*;
use crate::job::progress::Completion;
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
        gitaly: false,
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

#[test]
fn gitaly_mode_writes_gitaly_backups_bytes() {
    let buffer = Buffer::default();
    let log = JsonLog {
        out: Mutex::new(Box::new(buffer.clone())),
        pid: 7,
        gitaly: true,
    };
    let job = Job {
        storage_name: "default".into(),
        relative_path: "a&b<c>.git".into(),
        gl_project_path: "g/p\u{2028}".into(),
        ..Job::default()
    };
    log.job_event(
        CommandName::Create,
        &job,
        Event::Skipped {
            reason: "already backed up",
        },
    );
    let mut report = RunReport::default();
    report.failures.push((job.clone(), "boom".into()));
    log.summary(CommandName::Create, &report);
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let masked: Vec<String> = text
        .lines()
        .map(|line| {
            let start = line.find(r#""time":""#).unwrap() + 8;
            format!("{}TIME{}", &line[..start], &line[start + 24..])
        })
        .collect();
    assert_eq!(
        masked,
        [
            r#"{"command.name":"create","gl_project_path":"g/p\u2028","level":"warning","msg":"skipped create","pid":7,"relative_path":"a\u0026b\u003cc\u003e.git","storage_name":"default","time":"TIME"}"#,
            r#"{"level":"error","msg":"create: pipeline: 1 failures encountered:\n - a\u0026b\u003cc\u003e.git (g/p\u2028): boom\n","pid":7,"time":"TIME"}"#,
        ]
    );
}

#[test]
fn input_values_are_echoed_up_to_a_bound() {
    let buffer = Buffer::default();
    let log = JsonLog {
        out: Mutex::new(Box::new(buffer.clone())),
        pid: 1,
        gitaly: false,
    };
    let long_path = format!("{}.git", "ü".repeat(30_000));
    let job = Job {
        storage_name: "s".repeat(70_000),
        relative_path: long_path.clone(),
        gl_project_path: "g\"".repeat(20_000),
        ..Job::default()
    };
    log.job_event(CommandName::Create, &job, Event::Started);
    let error = format!(
        "relative path {:?} of storage {} is bad ({:?})",
        job.relative_path, job.storage_name, job.gl_project_path
    );
    log.job_event(CommandName::Create, &job, Event::Failed { error: &error });
    let mut report = RunReport::default();
    report.failures.push((job.clone(), error.clone()));
    log.summary(CommandName::Create, &report);
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    let started = &lines[0];
    let path = started["relative_path"].as_str().unwrap();
    assert!(path.ends_with('…') && long_path.starts_with(path.trim_end_matches('…')));
    assert!(path.len() <= ECHO_LIMIT + 3, "{}", path.len());
    assert_eq!(
        started["storage_name"].as_str().unwrap().len(),
        ECHO_LIMIT + 3
    );
    let failed = lines[1]["error"].as_str().unwrap();
    assert!(failed.starts_with("relative path \"üüü"), "{failed}");
    assert!(failed.contains("…\" of storage sss"), "{failed}");
    assert!(failed.contains("… is bad (\"g\\\"g\\\""), "{failed}");
    assert!(failed.len() < 4 * ECHO_LIMIT, "{}", failed.len());
    for line in text.lines() {
        assert!(line.len() < 12 * ECHO_LIMIT, "{} bytes", line.len());
    }
}

#[test]
fn completed_lines_name_the_backup_in_gitbak_style_only() {
    let job = Job {
        storage_name: "default".into(),
        relative_path: "a.git".into(),
        ..Job::default()
    };
    let details = Completion {
        backup_id: Some("20240101000000".into()),
        backup_time: Some("2024-01-01T00:00:05Z".into()),
        ..Completion::default()
    };
    let mut lines = Vec::new();
    for gitaly in [false, true] {
        let buffer = Buffer::default();
        let log = JsonLog {
            out: Mutex::new(Box::new(buffer.clone())),
            pid: 1,
            gitaly,
        };
        log.job_event(
            CommandName::Restore,
            &job,
            Event::Completed {
                details: Some(&details),
            },
        );
        log.job_event(
            CommandName::Create,
            &job,
            Event::Completed { details: None },
        );
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        lines.extend(
            text.lines()
                .map(|line| serde_json::from_str::<Value>(line).unwrap()),
        );
    }
    assert_eq!(lines[0]["backup_id"], "20240101000000");
    assert_eq!(lines[0]["backup_time"], "2024-01-01T00:00:05Z");
    assert_eq!(lines[0]["msg"], "completed restore");
    for line in &lines[1..] {
        let object = line.as_object().unwrap();
        assert!(
            !object.contains_key("backup_id") && !object.contains_key("backup_time"),
            "{line}"
        );
    }
}
