//! The text log format, for a person at a terminal: time, level,
//! repository, message, and what a job line's other fields add (a run's
//! lines say everything in their message; their fields are for log
//! pipelines). Pure: renders one line from the same fields the JSON line
//! carries.

use serde_json::{Map, Value};

/// Fields every job line carries: shown as the repository, or not at all.
const REPOSITORY_FIELDS: [&str; 4] = [
    "command.name",
    "storage_name",
    "relative_path",
    "gl_project_path",
];

/// `time` is the JSON line's (`2006-01-02T15:04:05.000Z`); the text line
/// shows its time of day (UTC), to the second.
pub(super) fn line(time: &str, level: &str, msg: &str, fields: &Map<String, Value>) -> String {
    let clock = time.get(11..19).unwrap_or(time);
    let level = match level {
        "info" => "INFO ",
        "warning" => "WARN ",
        "error" => "ERROR",
        other => other,
    };
    let mut text = format!("{clock} {level} ");
    let field = |name: &str| fields.get(name).and_then(Value::as_str).unwrap_or("");
    let path = field("relative_path");
    if !path.is_empty() {
        text.push_str(path);
        let project = field("gl_project_path");
        if !project.is_empty() {
            text.push_str(&format!(" ({project})"));
        }
        text.push_str(": ");
    }
    text.push_str(msg);
    if path.is_empty() {
        return text;
    }
    for (name, value) in fields {
        if REPOSITORY_FIELDS.contains(&name.as_str()) {
            continue;
        }
        let value = match value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        match name.as_str() {
            // The reason is the message's continuation.
            "error" | "reason" => text.push_str(&format!(": {value}")),
            "backup_id" => text.push_str(&format!(" from backup {value}")),
            "backup_time" => text.push_str(&format!(" (taken {value})")),
            _ => text.push_str(&format!(" {name}={value}")),
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_line_says_time_level_repository_and_message() {
        let mut fields = Map::new();
        fields.insert("command.name".into(), "create".into());
        fields.insert("storage_name".into(), "default".into());
        fields.insert("relative_path".into(), "@hashed/a.git".into());
        fields.insert("gl_project_path".into(), "group/a".into());
        fields.insert("error".into(), "disk full".into());
        assert_eq!(
            line(
                "2026-01-02T03:04:05.678Z",
                "error",
                "create failed",
                &fields
            ),
            "03:04:05 ERROR @hashed/a.git (group/a): create failed: disk full"
        );
        fields.remove("error");
        fields.insert("backup_id".into(), "20260102030405".into());
        fields.insert("backup_time".into(), "2026-01-02T03:04:05Z".into());
        assert_eq!(
            line("2026-01-02T03:04:05.678Z", "info", "completed restore", &fields),
            "03:04:05 INFO  @hashed/a.git (group/a): completed restore from backup 20260102030405 (taken 2026-01-02T03:04:05Z)"
        );
        let mut fields = Map::new();
        fields.insert("backup_id".into(), "20260102030405".into());
        assert_eq!(
            line(
                "2026-01-02T03:04:05.678Z",
                "info",
                "create: backup 20260102030405 to /b",
                &fields
            ),
            "03:04:05 INFO  create: backup 20260102030405 to /b"
        );
    }
}
