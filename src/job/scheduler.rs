//! The one place that decides how many repositories run at once.
//!
//! A reader task takes jobs from their source (stdin, or `--discover`'s
//! list) and hands them over a channel, at most `source::READ_AHEAD` jobs
//! ahead of the ones running. Each job waits in its storage's queue for a
//! slot of that storage and then, in a task of its own, for a global slot,
//! so a busy storage does not hold up another storage's jobs (unlike
//! gitaly-backup, spec §6.1) unless the whole read-ahead window is queued
//! behind it. One failure never stops the batch.
//!
//! Cancellation (SIGINT, SIGTERM): nothing more is read, queued jobs never
//! start, running ones keep running for `GRACE` so they can clean up (git is
//! killed, so they end fast) and are dropped after that. A job that fails
//! after the cancellation counts as interrupted, not failed.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::progress::{CommandName, Completion, Done, Event, Progress};
use super::source::{self, Intake, Ticket, Window};
use super::tally::Counts;
use super::{InputError, Job};

pub use super::source::JobSource;

/// How long running jobs get to finish after a cancellation.
pub const GRACE: Duration = Duration::from_secs(10);

/// Jobs handed from the reader task to the scheduler at once; the window,
/// not this, bounds how far reading runs ahead.
const HAND_OVER: usize = 64;

/// How one job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    /// Completed, with details for its log line (a restore's backup). A
    /// variant of its own so commands with nothing to add keep `Completed`.
    CompletedWith(Completion),
    /// Done by an earlier run (resuming a backup id); logged as skipped.
    AlreadyDone(String),
    Skipped(String),
    Failed(String),
}

impl Outcome {
    pub fn is_completed(&self) -> bool {
        matches!(self, Self::Completed | Self::CompletedWith(_))
    }
}

/// Concurrency caps; both at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub parallel: usize,
    pub parallel_storage: usize,
}

/// Repositories found non-existent that a run's report names; the count
/// goes on beyond it (a wrong storage could make every job one).
pub const NAMED_NON_EXISTENT: usize = 100;

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
    /// Every outcome counted apart, and bytes, for the summary.
    pub counts: Counts,
    /// The first `NAMED_NON_EXISTENT` jobs whose repository did not exist.
    pub non_existent: Vec<Job>,
    /// Jobs read from the source (an empty list is a mistake to report).
    pub jobs_read: usize,
}

pub type Work =
    Arc<dyn Fn(Job, Slots) -> Pin<Box<dyn Future<Output = Outcome> + Send>> + Send + Sync>;

/// The slots (its storage's and the global one) a running job holds until
/// it ends, or until it gives them up with `release` because what is left
/// of it runs no git: an unchanged repository's backup, left only to write
/// its manifests and wait for them to be durable, lets the next repository
/// start meanwhile, and many such waits then share one filesystem sync.
///
/// A handle: the job's task holds the slots too, so dropping the handle
/// early releases nothing.
pub struct Slots {
    held: Arc<std::sync::Mutex<Option<Permits>>>,
    storage: String,
    freed: mpsc::UnboundedSender<String>,
}

/// The storage's permit, and the global one (its semaphore is never
/// closed, so it is always there).
type Permits = (OwnedSemaphorePermit, Option<OwnedSemaphorePermit>);

impl Slots {
    pub fn release(&mut self) {
        let permits = self
            .held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if permits.is_some() {
            drop(permits);
            // The scheduler hands the storage's slot to its next job.
            let _ = self.freed.send(std::mem::take(&mut self.storage));
        }
    }
}

pub async fn run(
    source: impl JobSource,
    limits: Limits,
    command: CommandName,
    progress: Arc<dyn Progress>,
    cancel: CancellationToken,
    work: Work,
) -> RunReport {
    let settings = Settings {
        limits,
        window: Window::default(),
        grace: GRACE,
    };
    run_with(source, settings, command, progress, cancel, work).await
}

/// What `run` fixes and unit tests vary.
struct Settings {
    limits: Limits,
    window: Window,
    grace: Duration,
}

/// Aborts the reader task when the scheduler is done with it, whatever
/// way `run_with` ends (it may be blocked reading a stdin nobody closes).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn run_with(
    source: impl JobSource,
    settings: Settings,
    command: CommandName,
    progress: Arc<dyn Progress>,
    cancel: CancellationToken,
    work: Work,
) -> RunReport {
    let Settings {
        limits,
        window,
        grace,
    } = settings;
    let global = Arc::new(Semaphore::new(limits.parallel.max(1)));
    let mut queues = Queues {
        by_storage: HashMap::new(),
        parallel_storage: limits.parallel_storage.max(1),
    };
    let mut tasks: JoinSet<(Job, Option<Outcome>)> = JoinSet::new();
    // Each task's job and whether it has started, so a task dropped after
    // the grace period still gets its closing line.
    let mut running: HashMap<tokio::task::Id, (Job, Arc<AtomicBool>)> = HashMap::new();
    let mut report = RunReport::default();
    let (freed_sender, mut freed) = mpsc::unbounded_channel::<String>();
    let spawn = |tasks: &mut JoinSet<_>,
                 running: &mut HashMap<_, _>,
                 (job, ticket, storage_slot): Ready| {
        let started = Arc::new(AtomicBool::new(false));
        let handle = tasks.spawn(run_job(
            job.clone(),
            ticket,
            (storage_slot, freed_sender.clone()),
            global.clone(),
            command,
            (progress.clone(), started.clone()),
            cancel.clone(),
            work.clone(),
        ));
        running.insert(handle.id(), (job, started));
    };
    // The reader owns the source in a task of its own, so no select! here
    // ever drops a read half done (defect 1 of #8: a line was lost whenever
    // a job finished mid-read).
    let (sender, mut intake) = mpsc::channel::<Intake>(HAND_OVER);
    let _reader = AbortOnDrop(tokio::spawn(source::feed(source, window, sender)));
    let grace_over = async {
        cancel.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    tokio::pin!(grace_over);
    let (mut reading, mut stopped, mut dropped) = (true, false, false);
    loop {
        if !reading && tasks.is_empty() {
            // Nothing runs, so every storage has a free slot: no job waits
            // in a queue either.
            break;
        }
        // Every branch is cancel-safe, so losing the race loses nothing:
        // `cancelled()` holds no state; `grace_over` is pinned outside the
        // loop, so its timer is not restarted by each round; `join_next`
        // and `recv` are documented cancel-safe (an item is taken only
        // when returned).
        tokio::select! {
            biased;
            () = cancel.cancelled(), if !stopped => {
                // Nothing more is read and queued jobs never start; the
                // running ones finish, or are dropped after `grace`.
                stopped = true;
                if reading {
                    progress.jobs_read(report.jobs_read, true);
                }
                reading = false;
                intake.close();
                queues.by_storage.clear();
            }
            () = &mut grace_over, if !dropped => {
                // Each is reported as interrupted by `record`.
                tasks.abort_all();
                dropped = true;
            }
            Some(finished) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let id = match &finished {
                    Ok((id, _)) => *id,
                    Err(error) => error.id(),
                };
                let task = running.remove(&id);
                let storage = task.as_ref().map(|(job, _)| job.storage_name.clone());
                let started = task
                    .as_ref()
                    .is_some_and(|(_, started)| started.load(Ordering::SeqCst));
                if let (Err(error), Some((job, _))) = (&finished, &task) {
                    // Dropped after the grace period while it ran: its
                    // closing line (the task could not log it itself).
                    if error.is_cancelled() && started {
                        progress.job_event(command, job, Event::Interrupted);
                    }
                }
                record(&mut report, finished.map(|(_, ended)| ended), started);
                if !stopped {
                    for ready in queues.dispatch(storage.as_deref()) {
                        spawn(&mut tasks, &mut running, ready);
                    }
                }
            }
            // Cancel-safe: `recv` takes a message only when it returns it.
            Some(storage) = freed.recv() => {
                if !stopped {
                    for ready in queues.dispatch(Some(&storage)) {
                        spawn(&mut tasks, &mut running, ready);
                    }
                }
            }
            received = intake.recv(), if reading => match received {
                Some(Ok((job, ticket))) => {
                    report.jobs_read += 1;
                    progress.jobs_read(report.jobs_read, false);
                    for ready in queues.push(job, ticket) {
                        spawn(&mut tasks, &mut running, ready);
                    }
                }
                None => {
                    reading = false;
                    progress.jobs_read(report.jobs_read, true);
                }
                Some(Err(error)) => {
                    // Reading stops here; every job read before the bad
                    // one still runs, as it would had it been read sooner.
                    report.input_error = Some(error);
                    reading = false;
                    progress.jobs_read(report.jobs_read, true);
                }
            },
        }
    }
    report.interrupted |= cancel.is_cancelled();
    report
}

/// Jobs read and waiting for a slot of their storage, per storage. A
/// queued job costs its `Job` and strings (≈ 300 bytes for Rails' lines);
/// it gets a task only once it holds its storage slot, so tasks waiting
/// for the global slot are at most `parallel_storage` per storage.
struct Queues {
    by_storage: HashMap<String, Queue>,
    parallel_storage: usize,
}

struct Queue {
    slots: Arc<Semaphore>,
    jobs: VecDeque<(Job, Ticket)>,
}

/// A job ready for its task: it holds its storage's slot.
type Ready = (Job, Ticket, OwnedSemaphorePermit);

impl Queues {
    fn push(&mut self, job: Job, ticket: Ticket) -> Vec<Ready> {
        let storage = job.storage_name.clone();
        let parallel_storage = self.parallel_storage;
        self.by_storage
            .entry(storage.clone())
            .or_insert_with(|| Queue {
                slots: Arc::new(Semaphore::new(parallel_storage)),
                jobs: VecDeque::new(),
            })
            .jobs
            .push_back((job, ticket));
        self.dispatch(Some(&storage))
    }

    /// Takes the jobs of `storage` (every storage if `None`) that can have
    /// a slot now, in the order they were read, and forgets storages that
    /// are idle so a stream of distinct names cannot grow the map.
    fn dispatch(&mut self, storage: Option<&str>) -> Vec<Ready> {
        let names: Vec<String> = match storage {
            Some(name) => vec![name.to_owned()],
            None => self.by_storage.keys().cloned().collect(),
        };
        let mut ready = Vec::new();
        for name in names {
            let Some(queue) = self.by_storage.get_mut(&name) else {
                continue;
            };
            while !queue.jobs.is_empty() {
                let Ok(slot) = queue.slots.clone().try_acquire_owned() else {
                    break;
                };
                if let Some((job, ticket)) = queue.jobs.pop_front() {
                    ready.push((job, ticket, slot));
                }
            }
            if queue.jobs.is_empty() && queue.slots.available_permits() == self.parallel_storage {
                self.by_storage.remove(&name);
            }
        }
        ready
    }
}

/// One job's task: wait for a global slot (unless cancelled first), run,
/// log. `None`: interrupted.
#[allow(clippy::too_many_arguments)]
async fn run_job(
    job: Job,
    ticket: Ticket,
    (storage_slot, freed): (OwnedSemaphorePermit, mpsc::UnboundedSender<String>),
    global: Arc<Semaphore>,
    command: CommandName,
    (progress, started): (Arc<dyn Progress>, Arc<AtomicBool>),
    cancel: CancellationToken,
    work: Work,
) -> (Job, Option<Outcome>) {
    // Cancel-safe: dropping a semaphore's acquire future gives up its place
    // in the queue and holds no permit.
    let global_slot = tokio::select! {
        biased;
        () = cancel.cancelled() => None,
        slot = global.acquire_owned() => Some(slot),
    };
    // Started (or never will): no longer ahead of the running jobs.
    drop(ticket);
    // A slot granted in the same instant as the cancellation: the job
    // has not started, so it never will (and is never logged as started).
    let Some(global_slot) = global_slot.filter(|_| !cancel.is_cancelled()) else {
        return (job, None);
    };
    let held = Arc::new(std::sync::Mutex::new(Some((
        storage_slot,
        global_slot.ok(),
    ))));
    let slots = Slots {
        held: held.clone(),
        storage: job.storage_name.clone(),
        freed,
    };
    started.store(true, Ordering::SeqCst);
    progress.job_event(command, &job, Event::Started);
    // Not raced against `cancel`: a running job cleans up after itself
    // (git is killed on cancel) and ends; the scheduler drops it only when
    // the grace period is over.
    let work = AssertUnwindSafe(async {
        crate::failpoint::hit("job-start");
        work(job.clone(), slots).await
    });
    let outcome = match work.catch_unwind().await {
        Ok(outcome) => outcome,
        Err(panic) => Outcome::Failed(format!(
            "internal error: gitbak panicked while working on it ({}); please report this",
            panic_message(panic.as_ref())
        )),
    };
    let outcome = match outcome {
        // Most likely failed because its git was killed: interrupted.
        Outcome::Failed(_) if cancel.is_cancelled() => {
            progress.job_event(command, &job, Event::Interrupted);
            return (job, None);
        }
        outcome => outcome,
    };
    match &outcome {
        Outcome::Completed => progress.job_event(command, &job, Event::Completed { details: None }),
        Outcome::CompletedWith(details) => progress.job_event(
            command,
            &job,
            Event::Completed {
                details: Some(details),
            },
        ),
        Outcome::Skipped(reason) | Outcome::AlreadyDone(reason) => {
            progress.job_event(command, &job, Event::Skipped { reason })
        }
        Outcome::Failed(error) => progress.job_event(command, &job, Event::Failed { error }),
    }
    (job, Some(outcome))
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    if let Some(text) = panic.downcast_ref::<&str>() {
        text
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text
    } else {
        "no message"
    }
}

/// Counts a job's end; `started`: whether it had begun its work (a job
/// stopped while waiting for a slot is not counted at all).
fn record(
    report: &mut RunReport,
    finished: Result<(Job, Option<Outcome>), tokio::task::JoinError>,
    started: bool,
) {
    match &finished {
        Ok((_, Some(outcome))) => report.counts.add(outcome),
        Ok((_, None)) => report.counts.interrupted += usize::from(started),
        Err(error) if error.is_cancelled() => report.counts.interrupted += usize::from(started),
        Err(_) => report.counts.failed += 1,
    }
    if let Ok((job, Some(Outcome::CompletedWith(completion)))) = &finished {
        if completion.kind == Done::NonExistent && report.non_existent.len() < NAMED_NON_EXISTENT {
            report.non_existent.push(job.clone());
        }
    }
    match finished {
        Ok((_, Some(Outcome::Completed | Outcome::CompletedWith(_)))) => report.completed += 1,
        Ok((_, Some(Outcome::AlreadyDone(_)))) => report.already_done += 1,
        Ok((_, Some(Outcome::Skipped(_)))) => report.skipped += 1,
        Ok((job, Some(Outcome::Failed(error)))) => report.failures.push((job, error)),
        Ok((_, None)) => report.interrupted = true,
        // Dropped after the grace period.
        Err(error) if error.is_cancelled() => report.interrupted = true,
        // Panics inside a job's work are caught in `run_job` and name the
        // job; this is a panic in the scheduler's own code around it.
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
        let work: Work = Arc::new(move |job: Job, _slots: Slots| {
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
        let work: Work = Arc::new(move |job: Job, _slots: Slots| {
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

    #[tokio::test]
    async fn a_job_that_releases_its_slots_lets_the_next_one_start() {
        // One slot in all: every job releases it, then waits until the job
        // after it has started. Without the release, the first job waits
        // forever for a start that needs its slot.
        let started: Arc<Vec<tokio::sync::Notify>> =
            Arc::new((0..4).map(|_| tokio::sync::Notify::new()).collect());
        let held_at_once = Arc::new(AtomicUsize::new(0));
        let (work_started, work_held) = (started.clone(), held_at_once.clone());
        let work: Work = Arc::new(move |job: Job, mut slots: Slots| {
            let (started, held) = (work_started.clone(), work_held.clone());
            Box::pin(async move {
                let index: usize = job.relative_path.trim_end_matches(".git").parse().unwrap();
                assert_eq!(held.fetch_add(1, Ordering::SeqCst), 0, "slot shared");
                started[index].notify_one();
                held.fetch_sub(1, Ordering::SeqCst);
                slots.release();
                if index + 1 < started.len() {
                    started[index + 1].notified().await;
                }
                Outcome::Completed
            })
        });
        let report = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            run(
                jobs(&[("a", 4)]).into_iter(),
                limits(1),
                CommandName::Create,
                Arc::new(Silent),
                CancellationToken::new(),
                work,
            ),
        )
        .await
        .expect("a released slot was not handed on");
        assert_eq!(report.completed, 4);
    }

    fn limits(parallel: usize) -> Limits {
        Limits {
            parallel,
            parallel_storage: parallel,
        }
    }

    fn settings(parallel: usize, window: usize, grace: Duration) -> Settings {
        Settings {
            limits: limits(parallel),
            window: Window::new(window, usize::MAX >> 4),
            grace,
        }
    }

    #[tokio::test]
    async fn stdin_read_in_odd_pieces_while_jobs_finish_loses_no_line() {
        // Defect 1 of #8: a job finishing while a line was half read lost
        // the half. Lines arrive in 1–7 byte pieces with yields between,
        // and jobs finish all the time.
        const LINES: usize = 2_000;
        let text: String = (0..LINES)
            .map(|n| {
                format!(
                    "{{\"storage_name\":\"s{}\",\"relative_path\":\"g/{n}.git\"}}\n",
                    n % 3
                )
            })
            .collect();
        let (mut writer, reader) = tokio::io::duplex(64);
        let producer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let bytes = text.as_bytes();
            let (mut at, mut size) = (0, 1);
            while at < bytes.len() {
                let end = (at + size).min(bytes.len());
                writer.write_all(&bytes[at..end]).await.unwrap();
                at = end;
                size = size % 7 + 1;
                if at % 5 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        });
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let work: Work = Arc::new(move |job: Job, _slots: Slots| {
            let seen = record.clone();
            Box::pin(async move {
                if job.line % 2 == 0 {
                    tokio::task::yield_now().await;
                }
                seen.lock().unwrap().push(job.line);
                Outcome::Completed
            })
        });
        let source = crate::job::JobReader::new(tokio::io::BufReader::new(reader));
        let report = run(
            source,
            limits(3),
            CommandName::Create,
            Arc::new(Silent),
            CancellationToken::new(),
            work,
        )
        .await;
        producer.await.unwrap();
        assert!(report.input_error.is_none(), "{:?}", report.input_error);
        assert_eq!(report.completed, LINES);
        let mut lines = seen.lock().unwrap().clone();
        lines.sort_unstable();
        assert_eq!(lines, (1..=LINES).collect::<Vec<_>>());
    }

    /// A source of endless jobs that notes, at each read, how many jobs
    /// were read and not started.
    struct Counting {
        reads: usize,
        started: Arc<AtomicUsize>,
        peak_ahead: Arc<AtomicUsize>,
        total: usize,
    }

    #[async_trait::async_trait]
    impl JobSource for Counting {
        async fn next_job(&mut self) -> Result<Option<Job>, InputError> {
            if self.reads == self.total {
                return Ok(None);
            }
            self.reads += 1;
            let ahead = self.reads - self.started.load(Ordering::SeqCst);
            self.peak_ahead.fetch_max(ahead, Ordering::SeqCst);
            tokio::task::yield_now().await;
            Ok(Some(Job {
                storage_name: "s".into(),
                relative_path: format!("{}.git", self.reads),
                ..Job::default()
            }))
        }
    }

    #[tokio::test]
    async fn reading_stays_within_the_window() {
        let started = Arc::new(AtomicUsize::new(0));
        let peak_ahead = Arc::new(AtomicUsize::new(0));
        let source = Counting {
            reads: 0,
            started: started.clone(),
            peak_ahead: peak_ahead.clone(),
            total: 500,
        };
        let gate = Arc::new(Semaphore::new(0));
        let (work_started, work_gate) = (started.clone(), gate.clone());
        let work: Work = Arc::new(move |_job: Job, _slots: Slots| {
            let (started, gate) = (work_started.clone(), work_gate.clone());
            started.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                gate.acquire().await.unwrap().forget();
                Outcome::Completed
            })
        });
        let run = tokio::spawn(run_with(
            source,
            settings(2, 10, GRACE),
            CommandName::Create,
            Arc::new(Silent),
            CancellationToken::new(),
            work,
        ));
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        // Two running, ten read ahead of them, and reading waits.
        assert_eq!(started.load(Ordering::SeqCst), 2);
        assert_eq!(peak_ahead.load(Ordering::SeqCst), 10);
        // Let jobs through one by one: the window moves, never widens.
        for _ in 0..498 {
            gate.add_permits(1);
            tokio::task::yield_now().await;
        }
        gate.add_permits(2);
        let report = run.await.unwrap();
        assert_eq!(report.completed, 500);
        assert_eq!(peak_ahead.load(Ordering::SeqCst), 10);
    }

    #[tokio::test]
    async fn cancelled_runs_start_nothing_more_and_failures_become_interrupted() {
        let cancel = CancellationToken::new();
        let ran = Arc::new(Mutex::new(Vec::new()));
        let (work_cancel, work_ran) = (cancel.clone(), ran.clone());
        let work: Work = Arc::new(move |job: Job, _slots: Slots| {
            let (cancel, ran) = (work_cancel.clone(), work_ran.clone());
            Box::pin(async move {
                ran.lock().unwrap().push(job.relative_path.clone());
                if job.relative_path == "0.git" {
                    return Outcome::Completed;
                }
                cancel.cancel();
                // Cleaning up after the cancellation takes a moment: the
                // job must be allowed to finish it, then its failure
                // (its git was killed) is an interruption.
                tokio::time::sleep(Duration::from_millis(50)).await;
                Outcome::Failed("git was killed".into())
            })
        });
        let report = run_with(
            jobs(&[("a", 10)]).into_iter(),
            settings(1, 100, GRACE),
            CommandName::Create,
            Arc::new(Silent),
            cancel,
            work,
        )
        .await;
        assert_eq!(*ran.lock().unwrap(), ["0.git", "1.git"]);
        assert_eq!(report.completed, 1);
        assert!(report.failures.is_empty(), "{:?}", report.failures);
        assert!(report.interrupted);
    }

    /// Progress that notes each job's events, in order, and what was read.
    #[derive(Default)]
    struct Recorded {
        events: Mutex<Vec<(String, &'static str)>>,
        read: Mutex<Vec<(usize, bool)>>,
    }

    impl Progress for Recorded {
        fn job_event(&self, _: CommandName, job: &Job, event: Event<'_>) {
            let name = match event {
                Event::Started => "started",
                Event::Completed { .. } => "completed",
                Event::Skipped { .. } => "skipped",
                Event::Failed { .. } => "failed",
                Event::Warning { .. } => "warning",
                Event::Interrupted => "interrupted",
            };
            self.events
                .lock()
                .unwrap()
                .push((job.relative_path.clone(), name));
        }

        fn jobs_read(&self, count: usize, complete: bool) {
            self.read.lock().unwrap().push((count, complete));
        }
    }

    #[tokio::test]
    async fn every_started_job_gets_a_closing_event_and_none_starts_after_a_cancellation() {
        // Two jobs run: one fails because its git was killed, one is still
        // running when the grace period ends. Both get a closing event,
        // the eight queued behind them none, and the total read is known.
        let cancel = CancellationToken::new();
        let both_started = Arc::new(tokio::sync::Barrier::new(2));
        let (work_cancel, work_started) = (cancel.clone(), both_started.clone());
        let work: Work = Arc::new(move |job: Job, _slots: Slots| {
            let (cancel, both_started) = (work_cancel.clone(), work_started.clone());
            Box::pin(async move {
                both_started.wait().await;
                if job.relative_path == "0.git" {
                    cancel.cancel();
                    return Outcome::Failed("git was killed".into());
                }
                tokio::time::sleep(Duration::from_secs(600)).await;
                Outcome::Completed
            })
        });
        let progress = Arc::new(Recorded::default());
        let report = run_with(
            jobs(&[("a", 10)]).into_iter(),
            settings(2, 100, Duration::from_millis(100)),
            CommandName::Create,
            progress.clone(),
            cancel,
            work,
        )
        .await;
        let mut events = progress.events.lock().unwrap().clone();
        events.sort();
        assert_eq!(
            events,
            [
                ("0.git".to_owned(), "interrupted"),
                ("0.git".to_owned(), "started"),
                ("1.git".to_owned(), "interrupted"),
                ("1.git".to_owned(), "started"),
            ]
        );
        assert_eq!(report.counts.interrupted, 2);
        assert_eq!(report.counts.finished(), 2);
        assert_eq!(
            progress.read.lock().unwrap().last(),
            Some(&(report.jobs_read, true))
        );
    }

    #[tokio::test]
    async fn jobs_still_running_after_the_grace_period_are_dropped() {
        let cancel = CancellationToken::new();
        let finished = Arc::new(AtomicUsize::new(0));
        let (work_cancel, work_finished) = (cancel.clone(), finished.clone());
        let work: Work = Arc::new(move |_job: Job, _slots: Slots| {
            let (cancel, finished) = (work_cancel.clone(), work_finished.clone());
            Box::pin(async move {
                cancel.cancel();
                tokio::time::sleep(Duration::from_secs(600)).await;
                finished.fetch_add(1, Ordering::SeqCst);
                Outcome::Completed
            })
        });
        let begin = std::time::Instant::now();
        let report = run_with(
            jobs(&[("a", 2), ("b", 2)]).into_iter(),
            settings(2, 100, Duration::from_millis(100)),
            CommandName::Create,
            Arc::new(Silent),
            cancel,
            work,
        )
        .await;
        assert!(
            begin.elapsed() < Duration::from_secs(5),
            "{:?}",
            begin.elapsed()
        );
        assert_eq!(finished.load(Ordering::SeqCst), 0);
        assert!(report.interrupted);
        assert_eq!(report.completed + report.failures.len(), 0);
    }

    #[tokio::test]
    async fn a_panicking_job_names_its_repository() {
        let work: Work = Arc::new(move |job: Job, _slots: Slots| {
            Box::pin(async move {
                if job.relative_path == "1.git" {
                    panic!("index out of bounds");
                }
                Outcome::Completed
            })
        });
        let report = run(
            jobs(&[("a", 3)]).into_iter(),
            limits(2),
            CommandName::Create,
            Arc::new(Silent),
            CancellationToken::new(),
            work,
        )
        .await;
        assert_eq!(report.completed, 2);
        assert_eq!(report.failures.len(), 1);
        let (job, error) = &report.failures[0];
        assert_eq!(job.relative_path, "1.git");
        assert_eq!(
            error,
            "internal error: gitbak panicked while working on it (index out of bounds); please report this"
        );
    }

    #[tokio::test]
    async fn jobs_read_before_an_input_error_run_and_reading_stops() {
        let input = "{\"storage_name\":\"a\",\"relative_path\":\"1.git\"}\n{oops\n{\"storage_name\":\"a\",\"relative_path\":\"3.git\"}\n";
        let ran = Arc::new(Mutex::new(Vec::new()));
        let work_ran = ran.clone();
        let work: Work = Arc::new(move |job: Job, _slots: Slots| {
            let ran = work_ran.clone();
            Box::pin(async move {
                ran.lock().unwrap().push(job.relative_path);
                Outcome::Completed
            })
        });
        let report = run(
            crate::job::JobReader::new(input.as_bytes()),
            limits(2),
            CommandName::Create,
            Arc::new(Silent),
            CancellationToken::new(),
            work,
        )
        .await;
        assert!(matches!(
            report.input_error,
            Some(InputError::Syntax { line: 2, .. })
        ));
        assert_eq!(*ran.lock().unwrap(), ["1.git"]);
    }

    #[test]
    fn queues_keep_each_storages_order_and_forget_idle_storages() {
        let mut queues = Queues {
            by_storage: HashMap::new(),
            parallel_storage: 2,
        };
        let job = |storage: &str, n: usize| Job {
            storage_name: storage.into(),
            relative_path: format!("{n}.git"),
            ..Job::default()
        };
        let names = |ready: &[Ready]| -> Vec<String> {
            ready
                .iter()
                .map(|(job, _, _)| format!("{}/{}", job.storage_name, job.relative_path))
                .collect()
        };
        let mut running = Vec::new();
        for n in 0..5 {
            running.extend(queues.push(job("a", n), Ticket::for_test()));
        }
        running.extend(queues.push(job("b", 0), Ticket::for_test()));
        assert_eq!(names(&running), ["a/0.git", "a/1.git", "b/0.git"]);
        // a/0 ends: a's next job, in the order read.
        drop(running.remove(0));
        let next = queues.dispatch(Some("a"));
        assert_eq!(names(&next), ["a/2.git"]);
        running.extend(next);
        // Everything running ends.
        running.clear();
        let rest = queues.dispatch(None);
        assert_eq!(names(&rest), ["a/3.git", "a/4.git"]);
        assert!(!queues.by_storage.contains_key("b"), "idle b is kept");
        drop(rest);
        assert!(queues.dispatch(None).is_empty());
        assert!(queues.by_storage.is_empty());
    }
}
