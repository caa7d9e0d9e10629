//! Jobs: the repositories to work on, decoded from stdin's JSON objects
//! exactly as gitaly-backup's decoder reads them (spec §2.1). Runs nothing;
//! `source` reads them, `scheduler` runs them.

pub mod progress;
pub mod scheduler;
pub mod source;
pub mod tally;

use serde_json::Value;

pub use source::JobReader;

/// One repository to back up or restore, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Job {
    /// Line of stdin where the object started (1-based); 0 for discovered jobs.
    pub line: usize,
    pub storage_name: String,
    pub relative_path: String,
    pub gl_project_path: String,
    /// Accepted for compatibility; gitbak reads the storage directly.
    pub address: String,
    pub token: String,
    pub always_create: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("stdin line {line}, column {column}: invalid JSON: {detail}{}", object_start(*line, *start))]
    Syntax {
        line: usize,
        column: usize,
        start: usize,
        detail: String,
    },
    #[error("stdin line {line}: field {field:?} must be {expected}")]
    FieldType {
        line: usize,
        field: &'static str,
        expected: &'static str,
    },
    #[error("stdin line {line}: expected a JSON object, found {found}")]
    NotAnObject { line: usize, found: &'static str },
    #[error("stdin ends inside the JSON object that starts on line {line}")]
    Truncated { line: usize },
    #[error(
        "stdin line {line}: the JSON object that starts there is longer than {} KiB; \
         is this really a job line?", limit >> 10
    )]
    TooLong { line: usize, limit: usize },
    #[error("reading stdin: {0}")]
    Io(#[from] std::io::Error),
}

fn object_start(line: usize, start: usize) -> String {
    if line == start {
        String::new()
    } else {
        format!(" (in the JSON object that starts on line {start})")
    }
}

/// The most of an input value a message ever repeats: a job line can hold
/// 64 KiB, a log line should not.
pub const ECHO_LIMIT: usize = 512;

/// `text` cut to at most `limit` bytes on a character boundary, with "…"
/// when something was cut.
pub fn bounded(text: &str, limit: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= limit {
        return text.into();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end]).into()
}

/// serde_json's message without its position, which counts from the start
/// of the object being decoded rather than of stdin, and never longer than
/// `ECHO_LIMIT` in case it quotes the input.
fn without_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let text = match text.rfind(" at line ") {
        Some(end) => &text[..end],
        None => &text,
    };
    bounded(text, ECHO_LIMIT).into_owned()
}

/// Go's decoder matches field names case-insensitively, ignores unknown
/// fields and leaves `null` as the zero value; a wrong type is an error.
fn job_from_value(value: Value, line: usize) -> Result<Job, InputError> {
    let Value::Object(map) = value else {
        let found = match value {
            Value::Array(_) => "an array",
            Value::String(_) => "a string",
            Value::Number(_) => "a number",
            Value::Bool(_) => "a boolean",
            _ => "null",
        };
        return Err(InputError::NotAnObject { line, found });
    };
    let mut job = Job {
        line,
        ..Job::default()
    };
    for (key, value) in map {
        let key = key.to_ascii_lowercase();
        let text_field = match key.as_str() {
            "storage_name" => Some(("storage_name", &mut job.storage_name)),
            "relative_path" => Some(("relative_path", &mut job.relative_path)),
            "gl_project_path" => Some(("gl_project_path", &mut job.gl_project_path)),
            "address" => Some(("address", &mut job.address)),
            "token" => Some(("token", &mut job.token)),
            _ => None,
        };
        match (text_field, value) {
            (Some(_), Value::Null) => {}
            (Some((_, slot)), Value::String(text)) => *slot = text,
            (Some((field, _)), _) => {
                return Err(InputError::FieldType {
                    line,
                    field,
                    expected: "a string",
                })
            }
            (None, value) if key == "always_create" => match value {
                Value::Null => {}
                Value::Bool(flag) => job.always_create = flag,
                _ => {
                    return Err(InputError::FieldType {
                        line,
                        field: "always_create",
                        expected: "a boolean",
                    })
                }
            },
            (None, _) => {}
        }
    }
    Ok(job)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_cuts_on_a_char_boundary() {
        assert_eq!(bounded("short", 512), "short");
        let long = "é".repeat(400); // 800 bytes
        let cut = bounded(&long, 511);
        assert_eq!(cut.len(), 510 + "…".len());
        assert!(cut.ends_with('…'));
        assert_eq!(bounded(&"a".repeat(513), 512).len(), 512 + "…".len());
    }
}
