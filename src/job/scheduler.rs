//! The one place that decides how many repositories run at once.
//!
//! Every job gets its own task as soon as it is read, and waits for a slot
//! of its storage and then a global slot, so a busy storage never holds up
//! another storage's jobs (no head-of-line blocking, unlike gitaly-backup,
//! spec §6.1). One failure never stops the batch; Ctrl-C cancels every job.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::progress::{CommandName, Event, Progress};
use super::{InputError, Job, JobReader};

/// How one job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    /// Done by an earlier run (resuming a backup id); logged as skipped.
    AlreadyDone(String),
    Skipped(String),
    Failed(String),
}

/// Concurrency caps; both at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub parallel: usize,
    pub parallel_storage: usize,
}

/// Where jobs come from: stdin, or a list made by `--discover`.
#[async_trait]
pub trait JobSource: Send {
    async fn next_job(&mut self) -> Result<Option<Job>, InputError>;
}

#[async_trait]
impl<R: tokio::io::AsyncBufRead + Unpin + Send> JobSource for JobReader<R> {
    async fn next_job(&mut self) -> Result<Option<Job>, InputError> {
        JobReader::next_job(self).await
    }
}

#[async_trait]
impl JobSource for std::vec::IntoIter<Job> {
    async fn next_job(&mut self) -> Result<Option<Job>, InputError> {
        Ok(self.next())
    }
}

/// What a whole run did.
#[derive(Debug, Default)]
pub struct RunReport {
    pub completed: usize,
    pub already_done: usize,
    pub skipped: usize,
    /// In completion order, as gitaly's summary lists them.
    pub failures: Vec<(Job, String)>,
    pub input_error: Option<InputError>,
    pub interrupted: bool,
}

pub type Work = Arc<dyn Fn(Job) -> Pin<Box<dyn Future<Output = Outcome> + Send>> + Send + Sync>;

pub async fn run(
    mut source: impl JobSource,
    limits: Limits,
    command: CommandName,
    progress: Arc<dyn Progress>,
    cancel: CancellationToken,
    work: Work,
) -> RunReport {
    let global = Arc::new(Semaphore::new(limits.parallel.max(1)));
    let mut per_storage: HashMap<String, Arc<Semaphore>> = HashMap::new();
    let mut tasks = JoinSet::new();
    let mut report = RunReport::default();
    loop {
        let next = tokio::select! {
            () = cancel.cancelled() => break,
            next = source.next_job() => next,
            Some(finished) = tasks.join_next(), if !tasks.is_empty() => {
                record(&mut report, finished);
                continue;
            }
        };
        let job = match next {
            Ok(Some(job)) => job,
            Ok(None) => break,
            Err(error) => {
                // Jobs already started finish; nothing more is read.
                report.input_error = Some(error);
                break;
            }
        };
        let storage_slots = per_storage
            .entry(job.storage_name.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(limits.parallel_storage.max(1))))
            .clone();
        let (global, progress, cancel, work) = (
            global.clone(),
            progress.clone(),
            cancel.clone(),
            work.clone(),
        );
        tasks.spawn(async move {
            let outcome = tokio::select! {
                () = cancel.cancelled() => None,
                outcome = async {
                    let _storage_slot = storage_slots.acquire_owned().await.ok();
                    let _global_slot = global.acquire_owned().await.ok();
                    progress.job_event(command, &job, Event::Started);
                    work(job.clone()).await
                } => Some(outcome),
            };
            match &outcome {
                Some(Outcome::Completed) => progress.job_event(command, &job, Event::Completed),
                Some(Outcome::Skipped(reason) | Outcome::AlreadyDone(reason)) => {
                    progress.job_event(command, &job, Event::Skipped { reason })
                }
                Some(Outcome::Failed(error)) => {
                    progress.job_event(command, &job, Event::Failed { error })
                }
                None => {}
            }
            (job, outcome)
        });
    }
    while let Some(finished) = tasks.join_next().await {
        record(&mut report, finished);
    }
    report.interrupted = cancel.is_cancelled();
    report
}

fn record(
    report: &mut RunReport,
    finished: Result<(Job, Option<Outcome>), tokio::task::JoinError>,
) {
    match finished {
        Ok((_, Some(Outcome::Completed))) => report.completed += 1,
        Ok((_, Some(Outcome::AlreadyDone(_)))) => report.already_done += 1,
        Ok((_, Some(Outcome::Skipped(_)))) => report.skipped += 1,
        Ok((job, Some(Outcome::Failed(error)))) => report.failures.push((job, error)),
        Ok((_, None)) => report.interrupted = true,
        Err(error) => report
            .failures
            .push((Job::default(), format!("internal error: {error}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::progress::Silent;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    fn jobs(storages: &[(&str, usize)]) -> Vec<Job> {
        let mut jobs = Vec::new();
        for (storage, count) in storages {
            for index in 0..*count {
                jobs.push(Job {
                    storage_name: (*storage).into(),
                    relative_path: format!("{index}.git"),
                    ..Job::default()
                });
            }
        }
        jobs
    }

    /// Runs jobs that each hold their slot briefly, recording the peak
    /// concurrency in total and per storage.
    async fn peaks(limits: Limits, jobs: Vec<Job>) -> (usize, HashMap<String, usize>) {
        #[derive(Default)]
        struct Counters {
            total: usize,
            peak_total: usize,
            per: HashMap<String, (usize, usize)>,
        }
        let counters = Arc::new(Mutex::new(Counters::default()));
        let work_counters = counters.clone();
        let work: Work = Arc::new(move |job: Job| {
            let counters = work_counters.clone();
            Box::pin(async move {
                {
                    let mut c = counters.lock().unwrap();
                    c.total += 1;
                    c.peak_total = c.peak_total.max(c.total);
                    let entry = c.per.entry(job.storage_name.clone()).or_default();
                    entry.0 += 1;
                    entry.1 = entry.1.max(entry.0);
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                let mut c = counters.lock().unwrap();
                c.total -= 1;
                c.per.get_mut(&job.storage_name).unwrap().0 -= 1;
                Outcome::Completed
            })
        });
        let report = run(
            jobs.into_iter(),
            limits,
            CommandName::Create,
            Arc::new(Silent),
            CancellationToken::new(),
            work,
        )
        .await;
        assert!(report.failures.is_empty());
        let c = counters.lock().unwrap();
        (
            c.peak_total,
            c.per.iter().map(|(k, v)| (k.clone(), v.1)).collect(),
        )
    }

    #[tokio::test]
    async fn limits_hold_in_total_and_per_storage() {
        // gitaly's upstream matrix (spec §6.1), two storages with 10 jobs each.
        for (parallel, per_storage, max_total, max_per) in
            [(2, 1, 2, 1), (2, 3, 2, 2), (6, 3, 6, 3), (3, 2, 3, 2)]
        {
            let (total, per) = peaks(
                Limits {
                    parallel,
                    parallel_storage: per_storage,
                },
                jobs(&[("a", 10), ("b", 10)]),
            )
            .await;
            assert!(
                total <= max_total,
                "({parallel},{per_storage}) total {total}"
            );
            assert!(
                per.values().all(|&p| p <= max_per),
                "({parallel},{per_storage}) {per:?}"
            );
            assert!(
                total >= max_total.min(2),
                "no parallelism at all for ({parallel},{per_storage})"
            );
        }
    }

    #[tokio::test]
    async fn a_busy_storage_does_not_block_another() {
        // Storage "a" first in the input, one slot each: "b" must still run
        // alongside "a" rather than wait behind a's queue.
        let (total, _) = peaks(
            Limits {
                parallel: 4,
                parallel_storage: 1,
            },
            jobs(&[("a", 5), ("b", 5)]),
        )
        .await;
        assert_eq!(total, 2);
    }

    #[tokio::test]
    async fn failures_are_collected_and_the_rest_run() {
        let ran = Arc::new(AtomicUsize::new(0));
        let counter = ran.clone();
        let work: Work = Arc::new(move |job: Job| {
            let counter = counter.clone();
            Box::pin(async move {
                counter.fetch_add(1, Ordering::SeqCst);
                if job.relative_path == "3.git" {
                    Outcome::Failed("boom".into())
                } else {
                    Outcome::Completed
                }
            })
        });
        let limits = Limits {
            parallel: 2,
            parallel_storage: 2,
        };
        let report = run(
            jobs(&[("a", 6)]).into_iter(),
            limits,
            CommandName::Create,
            Arc::new(Silent),
            CancellationToken::new(),
            work,
        )
        .await;
        assert_eq!(ran.load(Ordering::SeqCst), 6);
        assert_eq!(report.completed, 5);
        assert_eq!(report.failures.len(), 1);
        assert_eq!(report.failures[0].0.relative_path, "3.git");
    }
}
