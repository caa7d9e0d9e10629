//! A run's counts by outcome and its bytes: one plain struct that the
//! summary, the progress display and (later) a metrics file all read, so
//! they never disagree. Pure: counting only.

use super::progress::Done;
use super::scheduler::Outcome;

/// Repositories by outcome, and bytes written (create) or read (restore).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Backed up (create) or restored (restore).
    pub written: usize,
    /// Incremental create: unchanged since its last backup, no new step.
    pub unchanged: usize,
    pub empty: usize,
    pub non_existent: usize,
    /// Done by an earlier run of the same backup id (a resumed create).
    pub already_done: usize,
    /// Not for this node (`--local-storages-only`).
    pub skipped: usize,
    pub failed: usize,
    /// Running when the run was interrupted.
    pub interrupted: usize,
    pub bytes: u64,
}

impl Counts {
    /// Counts one job's outcome.
    pub fn add(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Completed => self.written += 1,
            Outcome::CompletedWith(completion) => {
                self.bytes += completion.bytes;
                match completion.kind {
                    Done::Written => self.written += 1,
                    Done::Unchanged => self.unchanged += 1,
                    Done::Empty => self.empty += 1,
                    Done::NonExistent => self.non_existent += 1,
                }
            }
            Outcome::AlreadyDone(_) => self.already_done += 1,
            Outcome::Skipped(_) => self.skipped += 1,
            Outcome::Failed(_) => self.failed += 1,
        }
    }

    /// Jobs that ended, whatever way.
    pub fn finished(&self) -> usize {
        self.written
            + self.unchanged
            + self.empty
            + self.non_existent
            + self.already_done
            + self.skipped
            + self.failed
            + self.interrupted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::progress::Completion;

    #[test]
    fn each_outcome_has_its_count_and_bytes_add_up() {
        let mut counts = Counts::default();
        let done = |kind, bytes| {
            Outcome::CompletedWith(Completion {
                kind,
                bytes,
                ..Completion::default()
            })
        };
        counts.add(&done(Done::Written, 10));
        counts.add(&done(Done::Unchanged, 0));
        counts.add(&done(Done::NonExistent, 0));
        counts.add(&done(Done::Empty, 5));
        counts.add(&Outcome::Completed);
        counts.add(&Outcome::Failed("x".into()));
        counts.add(&Outcome::Skipped("x".into()));
        counts.add(&Outcome::AlreadyDone("x".into()));
        assert_eq!(
            counts,
            Counts {
                written: 2,
                unchanged: 1,
                empty: 1,
                non_existent: 1,
                already_done: 1,
                skipped: 1,
                failed: 1,
                interrupted: 0,
                bytes: 15,
            }
        );
        assert_eq!(counts.finished(), 8);
    }
}
