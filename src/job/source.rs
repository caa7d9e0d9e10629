//! Job sources: stdin (gitaly-backup's stream of JSON objects, spec §2.1)
//! and the list `--discover` makes, and the read-ahead window that bounds
//! how far reading may run ahead of the jobs that have started.
//!
//! Reading stdin is cancel-safe: everything read lives in the reader, so
//! dropping a `next_job` future between polls loses no byte. The scheduler
//! nevertheless runs [`feed`] in a task of its own that nobody cancels
//! mid-read, and takes jobs from a channel.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::{job_from_value, without_position, InputError, Job};

/// The longest JSON object accepted on stdin, from its `{` to its `}`.
/// Rails writes ~250 bytes per job; a longer object is an input error, so
/// one line can never cost more than this much memory to read.
pub const MAX_OBJECT: usize = 64 << 10;

/// Jobs read but not started yet, at most. Beyond it stdin waits, so
/// head-of-line blocking between storages (spec §6.1) can only occur once
/// this many jobs are queued. A queued job costs its strings and one
/// waiting task (well under 1 KiB for Rails' lines): ≈ 10 MiB in all.
pub const READ_AHEAD: usize = 10_000;

/// Bytes of job text (relative path, project path, …) read but not started,
/// at most: 10,000 jobs of 64 KiB each would be 640 MiB. A single job is
/// always let through (`MAX_OBJECT` is far below this).
pub const READ_AHEAD_BYTES: usize = 16 << 20;

/// Where jobs come from: stdin, or a list made by `--discover`.
#[async_trait]
pub trait JobSource: Send + 'static {
    /// The next job; `Ok(None)` at the end. Must be cancel-safe.
    async fn next_job(&mut self) -> Result<Option<Job>, InputError>;
}

/// The jobs `--discover` found (or any list).
#[async_trait]
impl JobSource for std::vec::IntoIter<Job> {
    async fn next_job(&mut self) -> Result<Option<Job>, InputError> {
        Ok(self.next())
    }
}

/// Streams jobs from a stream of JSON objects, one per line in practice,
/// but any whitespace separation works (pretty-printed objects included).
///
/// Input is taken through `fill_buf`/`consume`, never more than one line
/// and never more than `MAX_OBJECT + 1` bytes of one object at a time, so
/// a 200 MB line costs 64 KiB, not 200 MB.
pub struct JobReader<R> {
    input: R,
    /// Bytes read but not yet decoded: whitespace, complete objects, or
    /// the beginning of one.
    pending: Vec<u8>,
    /// The line `pending` starts on (1-based).
    pending_line: usize,
    /// Whether `pending` holds something new since the last decode attempt
    /// worth decoding (a whole line, a full buffer, or the end of input).
    ready: bool,
    at_end: bool,
}

fn is_json_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

impl<R: AsyncBufRead + Unpin> JobReader<R> {
    pub fn new(input: R) -> Self {
        Self {
            input,
            pending: Vec::new(),
            pending_line: 1,
            ready: false,
            at_end: false,
        }
    }

    /// The next job. Cancel-safe: the only await is `fill_buf`, which
    /// reads nothing when dropped, and bytes move from the input's buffer
    /// into `pending` without an await in between.
    pub async fn next_job(&mut self) -> Result<Option<Job>, InputError> {
        loop {
            if self.ready {
                if let Some(job) = self.decode_pending()? {
                    return Ok(Some(job));
                }
                self.ready = false;
                if self.pending.len() > MAX_OBJECT {
                    return Err(InputError::TooLong {
                        line: self.pending_line,
                        limit: MAX_OBJECT,
                    });
                }
                if self.at_end {
                    return if self.pending.is_empty() {
                        Ok(None)
                    } else {
                        Err(InputError::Truncated {
                            line: self.pending_line,
                        })
                    };
                }
            }
            let available = self.input.fill_buf().await?;
            if available.is_empty() {
                self.at_end = true;
                self.ready = true;
                continue;
            }
            // One byte more than an object may have, to tell "exactly the
            // limit" from "too long".
            let room = MAX_OBJECT + 1 - self.pending.len();
            let window = &available[..available.len().min(room)];
            let take = match window.iter().position(|&byte| byte == b'\n') {
                Some(newline) => newline + 1,
                None => window.len(),
            };
            self.pending.extend_from_slice(&window[..take]);
            self.input.consume(take);
            self.ready = self.pending.last() == Some(&b'\n') || self.pending.len() > MAX_OBJECT;
        }
    }

    /// Decodes one object from `pending` if it holds a complete one, after
    /// dropping the whitespace before it.
    fn decode_pending(&mut self) -> Result<Option<Job>, InputError> {
        let leading = self
            .pending
            .iter()
            .position(|&byte| !is_json_space(byte))
            .unwrap_or(self.pending.len());
        self.pending_line += newlines(&self.pending[..leading]);
        self.pending.drain(..leading);
        if self.pending.is_empty() {
            return Ok(None);
        }
        let mut stream =
            serde_json::Deserializer::from_slice(&self.pending).into_iter::<serde_json::Value>();
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
                if consumed > MAX_OBJECT {
                    return Err(InputError::TooLong {
                        line,
                        limit: MAX_OBJECT,
                    });
                }
                self.pending_line += newlines(&self.pending[..consumed]);
                self.pending.drain(..consumed);
                // More objects may follow on the same line.
                self.ready = true;
                job_from_value(value, line).map(Some)
            }
        }
    }
}

fn newlines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&byte| byte == b'\n').count()
}

#[async_trait]
impl<R: AsyncBufRead + Unpin + Send + 'static> JobSource for JobReader<R> {
    async fn next_job(&mut self) -> Result<Option<Job>, InputError> {
        JobReader::next_job(self).await
    }
}

/// The read-ahead window: jobs (and bytes of job text) read but not
/// started. A job holds its [`Ticket`] from when it is read until it has
/// its concurrency slots and starts.
#[derive(Clone)]
pub struct Window {
    jobs: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    byte_limit: usize,
}

/// A read job's place in the window; dropping it makes room for another.
#[derive(Debug)]
pub struct Ticket {
    _job: OwnedSemaphorePermit,
    _bytes: OwnedSemaphorePermit,
}

impl Window {
    pub fn new(jobs: usize, bytes: usize) -> Self {
        Self {
            jobs: Arc::new(Semaphore::new(jobs.max(1))),
            bytes: Arc::new(Semaphore::new(bytes.max(1))),
            byte_limit: bytes.max(1),
        }
    }
}

impl Default for Window {
    fn default() -> Self {
        Self::new(READ_AHEAD, READ_AHEAD_BYTES)
    }
}

fn text_bytes(job: &Job) -> usize {
    [
        &job.storage_name,
        &job.relative_path,
        &job.gl_project_path,
        &job.address,
        &job.token,
    ]
    .iter()
    .map(|text| text.len())
    .sum()
}

#[cfg(test)]
impl Ticket {
    /// A ticket of a window of its own, for tests of what holds tickets.
    pub(crate) fn for_test() -> Self {
        let window = Window::new(1, 1);
        Self {
            _job: window.jobs.try_acquire_owned().expect("a free place"),
            _bytes: window.bytes.try_acquire_owned().expect("a free byte"),
        }
    }
}

/// A job handed from the reader to the scheduler, with its place in the
/// window.
pub type Intake = Result<(Job, Ticket), InputError>;

/// Reads `source` to its end (or first error) into `jobs`, never more
/// than the window ahead. Runs in its own task and is never cancelled
/// mid-read; it ends when the source ends or the scheduler stops listening.
pub async fn feed(mut source: impl JobSource, window: Window, jobs: mpsc::Sender<Intake>) {
    loop {
        // A place in the window before reading, so at most the window's
        // size of jobs is ever read and not started.
        let Ok(place) = window.jobs.clone().acquire_owned().await else {
            return;
        };
        let next = source.next_job().await;
        let intake = match next {
            Ok(None) => return,
            Ok(Some(job)) => {
                let weight = text_bytes(&job).clamp(1, window.byte_limit);
                let weight = u32::try_from(weight).unwrap_or(u32::MAX);
                let Ok(bytes) = window.bytes.clone().acquire_many_owned(weight).await else {
                    return;
                };
                Ok((
                    job,
                    Ticket {
                        _job: place,
                        _bytes: bytes,
                    },
                ))
            }
            Err(error) => Err(error),
        };
        let stop = intake.is_err();
        if jobs.send(intake).await.is_err() || stop {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(input: &[u8]) -> (Vec<Job>, Option<InputError>) {
        let mut reader = JobReader::new(input);
        let mut jobs = Vec::new();
        loop {
            match reader.next_job().await {
                Ok(Some(job)) => jobs.push(job),
                Ok(None) => return (jobs, None),
                Err(error) => return (jobs, Some(error)),
            }
        }
    }

    fn line(path: &str) -> String {
        format!("{{\"storage_name\":\"default\",\"relative_path\":\"{path}\"}}\n")
    }

    #[tokio::test]
    async fn reads_rails_lines() {
        let input = r#"{"storage_name":"default","relative_path":"@hashed/6b/86/x.git","gl_project_path":"group/project","always_create":true}
{"storage_name":"default","relative_path":"@hashed/6b/86/x.wiki.git","gl_project_path":"group/project.wiki","always_create":false}
"#;
        let (jobs, error) = read_all(input.as_bytes()).await;
        assert!(error.is_none());
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0].relative_path, "@hashed/6b/86/x.git");
        assert!(jobs[0].always_create);
        assert_eq!(jobs[1].line, 2);
    }

    #[tokio::test]
    async fn case_insensitive_pretty_printed_and_unknown_fields() {
        let input = "\n{\n  \"Storage_Name\": \"default\",\n  \"RELATIVE_PATH\": \"a.git\",\n  \"extra\": [1],\n  \"token\": null\n}\n{\"storage_name\":\"s\",\"relative_path\":\"b.git\"} {\"storage_name\":\"s\",\"relative_path\":\"c.git\"}\n";
        let (jobs, error) = read_all(input.as_bytes()).await;
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
    async fn last_line_without_newline_and_utf8() {
        let input = "{\"relative_path\":\"ä.git\"}\n\n{\"relative_path\":\"ö.git\"}";
        let (jobs, error) = read_all(input.as_bytes()).await;
        assert!(error.is_none(), "{error:?}");
        assert_eq!(jobs[1].relative_path, "ö.git");
        assert_eq!(jobs[1].line, 3);
    }

    #[tokio::test]
    async fn errors_name_the_line() {
        let (jobs, error) = read_all(
            b"{\"storage_name\":\"a\",\"relative_path\":\"x.git\"}\n{\"storage_name\": oops}\n",
        )
        .await;
        assert_eq!(jobs.len(), 1);
        assert!(
            matches!(error, Some(InputError::Syntax { line: 2, .. })),
            "{error:?}"
        );
        let (_, error) = read_all(b"{\"storage_name\":\"a\",\n{\"storage_name\":\"b\"}\n").await;
        let text = error.unwrap().to_string();
        assert!(
            text.starts_with("stdin line 2, column 1: invalid JSON"),
            "{text}"
        );
        assert!(
            text.ends_with("(in the JSON object that starts on line 1)"),
            "{text}"
        );
        let (_, error) = read_all(b"{\"relative_path\": 5}\n").await;
        assert!(matches!(
            error,
            Some(InputError::FieldType {
                line: 1,
                field: "relative_path",
                ..
            })
        ));
        let (_, error) = read_all(b"\n\n{\"relative_path\": \"x\"\n").await;
        assert!(
            matches!(error, Some(InputError::Truncated { line: 3 })),
            "{error:?}"
        );
        let (_, error) = read_all(b"[1]\n").await;
        assert!(matches!(
            error,
            Some(InputError::NotAnObject { line: 1, .. })
        ));
    }

    /// An object of exactly `size` bytes: `{"relative_path":"aaa…"}`.
    fn object_of(size: usize) -> String {
        let frame = "{\"relative_path\":\"\"}".len();
        format!("{{\"relative_path\":\"{}\"}}", "a".repeat(size - frame))
    }

    #[tokio::test]
    async fn objects_up_to_the_limit_are_read_longer_ones_name_their_line() {
        let exact = object_of(MAX_OBJECT);
        assert_eq!(exact.len(), MAX_OBJECT);
        // Indented and on a line after blank ones: only the object counts.
        let input = format!("{}\n\n   {exact}\n{}", line("a.git"), line("b.git"));
        let (jobs, error) = read_all(input.as_bytes()).await;
        assert!(error.is_none(), "{error:?}");
        assert_eq!(jobs.len(), 3);
        assert_eq!(
            (jobs[1].line, jobs[1].relative_path.len()),
            (4, MAX_OBJECT - 20)
        );

        let over = object_of(MAX_OBJECT + 1);
        let input = format!("{}\n{over}\n{}", line("a.git"), line("b.git"));
        let (jobs, error) = read_all(input.as_bytes()).await;
        assert_eq!(jobs.len(), 1);
        assert!(
            matches!(error, Some(InputError::TooLong { line: 3, .. })),
            "{error:?}"
        );
        let text = error.unwrap().to_string();
        assert!(text.contains("line 3") && text.contains("64 KiB"), "{text}");

        // A pretty-printed object over several lines counts as a whole, and
        // the error names the line it starts on.
        let tall = format!(
            "{{\n\"relative_path\":\"{}\",\n\"gl_project_path\":\"{}\"\n}}\n",
            "a".repeat(MAX_OBJECT / 2),
            "b".repeat(MAX_OBJECT / 2)
        );
        let (_, error) = read_all(format!("\n{tall}").as_bytes()).await;
        assert!(
            matches!(error, Some(InputError::TooLong { line: 2, .. })),
            "{error:?}"
        );
        // Many small objects on one long line are fine.
        let wide: String = (0..2_000)
            .map(|n| line(&format!("{n}.git")).replace('\n', " "))
            .collect();
        assert!(wide.len() > MAX_OBJECT);
        let (jobs, error) = read_all(wide.as_bytes()).await;
        assert!(error.is_none(), "{error:?}");
        assert_eq!(jobs.len(), 2_000);
    }

    #[tokio::test]
    async fn a_huge_line_is_never_read_whole() {
        // 8 MiB of one object: reading stops after the limit, the rest
        // stays unread in the input.
        let huge = object_of(8 << 20);
        let mut input = huge.as_bytes();
        let mut reader = JobReader::new(&mut input);
        let error = reader.next_job().await.unwrap_err();
        assert!(matches!(error, InputError::TooLong { line: 1, .. }));
        assert!(
            reader.pending.capacity() <= 2 * MAX_OBJECT + 2,
            "{}",
            reader.pending.capacity()
        );
        drop(reader);
        assert!(input.len() >= (8 << 20) - MAX_OBJECT - 1);
        assert!(error.to_string().len() < 200);
    }

    #[tokio::test]
    async fn next_job_is_cancel_safe() {
        // Dropping next_job whenever it is pending (every other poll)
        // loses nothing: the input arrives in 1–7 byte pieces.
        let text: String = (0..300).map(|n| line(&format!("g/{n}.git"))).collect();
        let (mut writer, reader) = tokio::io::duplex(16);
        let producer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let bytes = text.as_bytes();
            let mut at = 0;
            let mut size = 1;
            while at < bytes.len() {
                let end = (at + size).min(bytes.len());
                writer.write_all(&bytes[at..end]).await.unwrap();
                at = end;
                size = size % 7 + 1;
                tokio::task::yield_now().await;
            }
        });
        let mut reader = JobReader::new(tokio::io::BufReader::new(reader));
        let mut jobs = Vec::new();
        loop {
            tokio::select! {
                next = reader.next_job() => match next.unwrap() {
                    Some(job) => jobs.push(job),
                    None => break,
                },
                () = tokio::task::yield_now() => {}
            }
        }
        producer.await.unwrap();
        let paths: Vec<String> = jobs.into_iter().map(|job| job.relative_path).collect();
        let expected: Vec<String> = (0..300).map(|n| format!("g/{n}.git")).collect();
        assert_eq!(paths, expected);
    }
}
