//! Jobs: the repositories to work on, read from stdin exactly as
//! gitaly-backup's decoder reads them (spec §2.1). Runs nothing.

pub mod progress;
pub mod scheduler;

use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

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

/// serde_json's message without its position, which counts from the start
/// of the object being decoded rather than of stdin.
fn without_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(end) => text[..end].to_owned(),
        None => text,
    }
}

/// Streams jobs from a stream of JSON objects, one per line in practice,
/// but any whitespace separation works (pretty-printed objects included).
pub struct JobReader<R> {
    input: R,
    /// Text read but not yet decoded, and the line it starts on.
    pending: String,
    pending_line: usize,
    lines_read: usize,
}

impl<R: AsyncBufRead + Unpin> JobReader<R> {
    pub fn new(input: R) -> Self {
        Self {
            input,
            pending: String::new(),
            pending_line: 1,
            lines_read: 0,
        }
    }

    pub async fn next_job(&mut self) -> Result<Option<Job>, InputError> {
        loop {
            if let Some(job) = self.decode_pending()? {
                return Ok(Some(job));
            }
            let mut line = String::new();
            if self.input.read_line(&mut line).await? == 0 {
                return if self.pending.trim().is_empty() {
                    Ok(None)
                } else {
                    Err(InputError::Truncated {
                        line: self.pending_line,
                    })
                };
            }
            self.lines_read += 1;
            if self.pending.trim().is_empty() {
                self.pending.clear();
                self.pending_line = self.lines_read;
            }
            self.pending.push_str(&line);
        }
    }

    /// Decodes one object from `pending` if it holds a complete one.
    fn decode_pending(&mut self) -> Result<Option<Job>, InputError> {
        let leading = self.pending.len() - self.pending.trim_start().len();
        self.pending_line += self.pending[..leading].matches('\n').count();
        self.pending.drain(..leading);
        if self.pending.is_empty() {
            return Ok(None);
        }
        let mut stream = serde_json::Deserializer::from_str(&self.pending).into_iter::<Value>();
        match stream.next() {
            None => Ok(None),
            Some(Err(error)) if error.is_eof() => Ok(None),
            Some(Err(error)) => Err(InputError::Syntax {
                line: self.pending_line + error.line().saturating_sub(1),
                column: error.column(),
                start: self.pending_line,
                detail: without_position(&error),
            }),
            Some(Ok(value)) => {
                let consumed = stream.byte_offset();
                let line = self.pending_line;
                self.pending_line += self.pending[..consumed].matches('\n').count();
                self.pending.drain(..consumed);
                job_from_value(value, line).map(Some)
            }
        }
    }
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

    async fn read_all(input: &str) -> (Vec<Job>, Option<InputError>) {
        let mut reader = JobReader::new(input.as_bytes());
        let mut jobs = Vec::new();
        loop {
            match reader.next_job().await {
                Ok(Some(job)) => jobs.push(job),
                Ok(None) => return (jobs, None),
                Err(error) => return (jobs, Some(error)),
            }
        }
    }

    #[tokio::test]
    async fn reads_rails_lines() {
        let input = r#"{"storage_name":"default","relative_path":"@hashed/6b/86/x.git","gl_project_path":"group/project","always_create":true}
{"storage_name":"default","relative_path":"@hashed/6b/86/x.wiki.git","gl_project_path":"group/project.wiki","always_create":false}
"#;
        let (jobs, error) = read_all(input).await;
        assert!(error.is_none());
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0].relative_path, "@hashed/6b/86/x.git");
        assert!(jobs[0].always_create);
        assert_eq!(jobs[1].line, 2);
    }

    #[tokio::test]
    async fn case_insensitive_pretty_printed_and_unknown_fields() {
        let input = "\n{\n  \"Storage_Name\": \"default\",\n  \"RELATIVE_PATH\": \"a.git\",\n  \"extra\": [1],\n  \"token\": null\n}\n{\"storage_name\":\"s\",\"relative_path\":\"b.git\"} {\"storage_name\":\"s\",\"relative_path\":\"c.git\"}\n";
        let (jobs, error) = read_all(input).await;
        assert!(error.is_none(), "{error:?}");
        assert_eq!(
            jobs.iter()
                .map(|j| j.relative_path.as_str())
                .collect::<Vec<_>>(),
            ["a.git", "b.git", "c.git"]
        );
        assert_eq!(jobs.iter().map(|j| j.line).collect::<Vec<_>>(), [2, 8, 8]);
        assert_eq!(jobs[0].storage_name, "default");
    }

    #[tokio::test]
    async fn errors_name_the_line() {
        let (jobs, error) = read_all(
            "{\"storage_name\":\"a\",\"relative_path\":\"x.git\"}\n{\"storage_name\": oops}\n",
        )
        .await;
        assert_eq!(jobs.len(), 1);
        assert!(
            matches!(error, Some(InputError::Syntax { line: 2, .. })),
            "{error:?}"
        );
        let (_, error) = read_all("{\"storage_name\":\"a\",\n{\"storage_name\":\"b\"}\n").await;
        let text = error.unwrap().to_string();
        assert!(
            text.starts_with("stdin line 2, column 1: invalid JSON"),
            "{text}"
        );
        assert!(
            text.ends_with("(in the JSON object that starts on line 1)"),
            "{text}"
        );
        let (_, error) = read_all("{\"relative_path\": 5}\n").await;
        assert!(matches!(
            error,
            Some(InputError::FieldType {
                line: 1,
                field: "relative_path",
                ..
            })
        ));
        let (_, error) = read_all("\n\n{\"relative_path\": \"x\"\n").await;
        assert!(
            matches!(error, Some(InputError::Truncated { line: 3 })),
            "{error:?}"
        );
        let (_, error) = read_all("[1]\n").await;
        assert!(matches!(
            error,
            Some(InputError::NotAnObject { line: 1, .. })
        ));
    }
}
