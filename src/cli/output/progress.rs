//! Progress: one more consumer of the run's events, beside the log. On a
//! terminal, an indicatif display on stderr (repositories done / total,
//! bytes and rate, elapsed and ETA, the repositories in flight); elsewhere,
//! a one-line progress log every so often. Does no work: it counts events.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Map;

use super::Log;
use crate::job::progress::{CommandName, Event, Progress};
use crate::job::Job;

/// How often the progress log line is written when no display is shown.
pub const LOG_EVERY: Duration = Duration::from_secs(30);

/// Repositories in flight the display and the progress line name; the
/// rest are counted.
const NAMED_RUNNING: usize = 3;

/// The log, and progress on top of it: every event goes to the log first,
/// then updates the counts the display and the progress line show.
pub struct Console {
    log: Arc<Log>,
    command: CommandName,
    state: Mutex<State>,
    bars: Option<Bars>,
    begin: Instant,
}

struct Bars {
    multi: MultiProgress,
    main: ProgressBar,
    running: ProgressBar,
}

/// What progress shows, counted from events.
#[derive(Debug, Default, Clone)]
struct State {
    read: usize,
    /// Known once the job source has ended.
    total: Option<usize>,
    finished: usize,
    bytes: u64,
    /// Repositories in flight, in the order they started.
    running: Vec<String>,
}

/// A new progress display on stderr, to share with the log (`Log::stdout`)
/// so log lines are written while it is cleared.
pub fn display() -> MultiProgress {
    MultiProgress::with_draw_target(ProgressDrawTarget::stderr())
}

impl Console {
    /// `display`: the terminal's progress display (see `display`), or none.
    pub fn new(log: Arc<Log>, command: CommandName, display: Option<MultiProgress>) -> Self {
        let bars = display.map(|multi| {
            let main = multi.add(ProgressBar::new_spinner());
            main.set_style(style("{spinner} {wide_msg}"));
            main.enable_steady_tick(Duration::from_millis(200));
            let running = multi.add(ProgressBar::new_spinner());
            running.set_style(style("  {wide_msg}"));
            Bars {
                multi,
                main,
                running,
            }
        });
        let console = Self {
            log,
            command,
            state: Mutex::new(State::default()),
            bars,
            begin: Instant::now(),
        };
        console.redraw();
        console
    }

    pub fn log(&self) -> &Log {
        &self.log
    }

    /// Removes the display from the terminal, before the summary.
    pub fn finish(&self) {
        if let Some(bars) = &self.bars {
            bars.main.finish_and_clear();
            bars.running.finish_and_clear();
            let _ = bars.multi.clear();
        }
    }

    /// One progress log line, unless a display shows the same.
    pub fn log_progress(&self) {
        if self.bars.is_some() {
            return;
        }
        let state = self.state();
        let mut msg = format!(
            "{}: progress: {}",
            self.command.as_str(),
            status(&state, self.begin.elapsed())
        );
        if !state.running.is_empty() {
            msg.push_str(&format!("; {}", running(&state)));
        }
        self.log.line("info", &msg, Map::new());
    }

    fn state(&self) -> State {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn update(&self, change: impl FnOnce(&mut State)) {
        change(
            &mut self
                .state
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        self.redraw();
    }

    fn redraw(&self) {
        let Some(bars) = &self.bars else {
            return;
        };
        let state = self.state();
        if let Some(total) = state.total {
            if bars.main.length() != Some(total as u64) {
                bars.main.set_length(total as u64);
                bars.main
                    .set_style(style("{spinner} [{bar:25}] {wide_msg}").progress_chars("=> "));
            }
        }
        bars.main.set_position(state.finished as u64);
        bars.main.set_message(status(&state, self.begin.elapsed()));
        bars.running.set_message(running(&state));
    }
}

/// A spinner on stderr for slow work that reports no events (list and
/// prune reading a location's catalogue), shown only when stderr is a
/// terminal; cleared when dropped, before the output.
pub struct Spinner(Option<ProgressBar>);

impl Spinner {
    pub fn start(message: String) -> Self {
        if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            return Self(None);
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(style("{spinner} {wide_msg} {elapsed}"));
        bar.set_message(message);
        bar.enable_steady_tick(Duration::from_millis(100));
        Self(Some(bar))
    }
}

impl Spinner {
    pub fn set_message(&self, message: String) {
        if let Some(bar) = &self.0 {
            bar.set_message(message);
        }
    }

    /// Runs `write` (a line on stderr) with the spinner out of the way.
    pub fn suspend(&self, write: impl FnOnce()) {
        match &self.0 {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }

    /// Clears it for good, before the command's output.
    pub fn clear(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }

    /// Turns the spinner into a bar of `total` steps (verify's backups,
    /// once selected), with an ETA.
    pub fn set_total(&self, total: usize) {
        if let Some(bar) = &self.0 {
            bar.set_length(total as u64);
            bar.set_style(style(
                "{spinner} {wide_msg} {pos}/{len} {elapsed} ETA {eta}",
            ));
        }
    }

    /// One step done; `message` replaces the text.
    pub fn step(&self, message: String) {
        if let Some(bar) = &self.0 {
            bar.inc(1);
            bar.set_message(message);
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

/// A run that ends early (an error before or after its jobs) leaves no
/// display behind on the terminal.
impl Drop for Console {
    fn drop(&mut self) {
        self.finish();
    }
}

fn style(template: &str) -> ProgressStyle {
    // The templates are constants, checked by the unit tests.
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner())
}

/// Writes a progress log line every `every` until the returned guard is
/// dropped (a run without a display: cron's log shows that it moves).
pub fn log_every(console: Arc<Console>, every: Duration) -> tokio_util::sync::DropGuard {
    let stop = tokio_util::sync::CancellationToken::new();
    let guard = stop.clone().drop_guard();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.tick().await;
        loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => return,
                _ = ticks.tick() => console.log_progress(),
            }
        }
    });
    guard
}

impl Progress for Console {
    fn job_event(&self, command: CommandName, job: &Job, event: Event<'_>) {
        self.log.job_event(command, job, event_copy(&event));
        let name = job.relative_path.clone();
        match event {
            Event::Started => self.update(|state| state.running.push(name)),
            Event::Warning { .. } => {}
            Event::Completed { details } => {
                let bytes = details.map_or(0, |details| details.bytes);
                self.update(|state| {
                    state.bytes += bytes;
                    end(state, &name);
                })
            }
            Event::Skipped { .. } | Event::Failed { .. } | Event::Interrupted => {
                self.update(|state| end(state, &name))
            }
        }
    }

    fn run_warning(&self, message: &str, fields: &[(&str, &str)]) {
        self.log.run_warning(message, fields);
    }

    fn jobs_read(&self, count: usize, complete: bool) {
        self.update(|state| {
            state.read = count;
            if complete {
                state.total = Some(count);
            }
        });
    }
}

fn event_copy<'a>(event: &Event<'a>) -> Event<'a> {
    match *event {
        Event::Started => Event::Started,
        Event::Completed { details } => Event::Completed { details },
        Event::Skipped { reason } => Event::Skipped { reason },
        Event::Failed { error } => Event::Failed { error },
        Event::Warning { message } => Event::Warning { message },
        Event::Interrupted => Event::Interrupted,
    }
}

/// A job ended: one more finished, no longer in flight (skipped jobs of
/// another node never were).
fn end(state: &mut State, name: &str) {
    state.finished += 1;
    if let Some(at) = state.running.iter().position(|running| running == name) {
        state.running.remove(at);
    }
}

/// `12/40 repositories, 1.20 GiB, 30.50 MiB/s, 1:02 elapsed, ETA 3:05`;
/// `12/? repositories (40 read)` while the total is not known.
fn status(state: &State, elapsed: Duration) -> String {
    let mut text = match state.total {
        Some(total) => format!("{}/{total} repositories", state.finished),
        None => format!("{}/? repositories ({} read)", state.finished, state.read),
    };
    let seconds = elapsed.as_secs_f64();
    text.push_str(&format!(", {}", HumanBytes(state.bytes)));
    if seconds >= 1.0 {
        text.push_str(&format!(
            ", {}/s",
            HumanBytes((state.bytes as f64 / seconds) as u64)
        ));
    }
    text.push_str(&format!(", {} elapsed", clock(elapsed)));
    if let Some(total) = state.total {
        if state.finished > 0 && state.finished < total {
            let left = seconds * (total - state.finished) as f64 / state.finished as f64;
            text.push_str(&format!(", ETA {}", clock(Duration::from_secs_f64(left))));
        }
    }
    text
}

/// `running: a.git, b.git, c.git (+2 more)`.
fn running(state: &State) -> String {
    if state.running.is_empty() {
        return String::new();
    }
    let named: Vec<&str> = state
        .running
        .iter()
        .take(NAMED_RUNNING)
        .map(String::as_str)
        .collect();
    let mut text = format!("running: {}", named.join(", "));
    if state.running.len() > NAMED_RUNNING {
        text.push_str(&format!(" (+{} more)", state.running.len() - NAMED_RUNNING));
    }
    text
}

/// `1:02`, `1:02:03`: a duration as a clock shows it.
pub fn clock(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if hours > 0 {
        format!("{hours}:{minutes:02}:{seconds:02}")
    } else {
        format!("{minutes}:{seconds:02}")
    }
}

/// What list, prune and verify show while they work: run warnings on
/// stderr (stdout is their output), and at a terminal a spinner that
/// counts the manifests read, then (verify) the backups checked.
pub struct CatalogDisplay {
    spinner: Spinner,
    /// What is being read ("reading the backups of LOCATION").
    what: Mutex<String>,
    verified_bytes: std::sync::atomic::AtomicU64,
}

impl CatalogDisplay {
    pub fn start() -> Arc<Self> {
        Arc::new(Self {
            spinner: Spinner::start("opening the backup location".into()),
            what: Mutex::new(String::new()),
            verified_bytes: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Names the work, once the location is open.
    pub fn reading(&self, what: String) {
        self.spinner.set_message(what.clone());
        if let Ok(mut shown) = self.what.lock() {
            *shown = what;
        }
    }

    pub fn clear(&self) {
        self.spinner.clear();
    }
}

impl Progress for CatalogDisplay {
    fn job_event(&self, _: CommandName, _: &crate::job::Job, _: crate::job::progress::Event<'_>) {}

    fn run_warning(&self, message: &str, fields: &[(&str, &str)]) {
        let fields: String = fields.iter().map(|(k, v)| format!(" {k}={v}")).collect();
        self.spinner
            .suspend(|| eprintln!("gitbak: warning: {message}{fields}"));
    }

    fn catalog_read(&self, read: usize, listed: usize, listed_all: bool) {
        let what = self
            .what
            .lock()
            .map(|what| what.clone())
            .unwrap_or_default();
        let more = if listed_all { "" } else { "+" };
        // Counts first: a narrow terminal cuts the end of the line.
        self.spinner
            .set_message(format!("{read}/{listed}{more} manifests read: {what}"));
    }
}

impl crate::cmd::verify::VerifyProgress for CatalogDisplay {
    fn selected(&self, backups: usize) {
        self.spinner.set_total(backups);
    }

    fn checked(&self, bytes: u64) {
        use std::sync::atomic::Ordering;
        let total = self.verified_bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.spinner.step(format!(
            "verifying backups: {} checked",
            crate::cli::table::human_bytes(total)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_valid() {
        for template in [
            "{spinner} {wide_msg}",
            "  {wide_msg}",
            "{spinner} [{bar:25}] {wide_msg}",
        ] {
            assert!(ProgressStyle::with_template(template).is_ok(), "{template}");
        }
    }

    #[test]
    fn status_says_done_total_bytes_rate_elapsed_and_eta() {
        let mut state = State {
            read: 40,
            total: None,
            finished: 10,
            bytes: 10 << 20,
            running: (1..=5).map(|n| format!("{n}.git")).collect(),
        };
        assert_eq!(
            status(&state, Duration::from_secs(10)),
            "10/? repositories (40 read), 10.00 MiB, 1.00 MiB/s, 0:10 elapsed"
        );
        state.total = Some(40);
        assert_eq!(
            status(&state, Duration::from_secs(10)),
            "10/40 repositories, 10.00 MiB, 1.00 MiB/s, 0:10 elapsed, ETA 0:30"
        );
        assert_eq!(running(&state), "running: 1.git, 2.git, 3.git (+2 more)");
        assert_eq!(clock(Duration::from_secs(3723)), "1:02:03");
    }
}
