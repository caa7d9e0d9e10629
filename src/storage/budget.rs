//! One memory budget for the part buffers of every upload in the process
//! (`--upload-memory`).
//!
//! A cloud upload reserves a part's bytes here before it reads that part
//! from its body, and the reservation goes back when the part's request
//! ends: sent, failed, or dropped with its task. Every upload of a run
//! shares the one budget, so part memory is bounded per process however
//! many repositories `--parallel` runs at once; an upload that finds the
//! budget spent waits. Retries resend the buffer they hold and reserve
//! nothing more. The filesystem backend streams without part buffers and
//! never reserves.
//!
//! No deadlock: an upload reserves only while it holds no unsent part; the
//! parts it holds are already being sent, and their requests end (and give
//! their bytes back) whatever other uploads do. The semaphore is fair
//! (first come, first served), so one part is always enough for an upload
//! to move on, and none starves. Parts never grow past half the budget
//! (`largest_part`), and a single reservation never asks for more than the
//! whole budget, so any reservation can be granted once others end.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// `--upload-memory`'s default.
pub const DEFAULT_UPLOAD_MEMORY: usize = 256 << 20;
/// The budget counts in KiB, so that one reservation (at most the whole
/// budget) fits the semaphore's `u32` count up to 4 TiB.
const UNIT: usize = 1 << 10;
/// The smallest first part any provider cuts (S3's minimum part size), and
/// the alignment GCS rounds chunks up to.
const SMALLEST_PART: usize = 5 << 20;
const CHUNK_ALIGNMENT: usize = 256 << 10;

/// The process-wide budget. Clones share it.
#[derive(Clone)]
pub struct MemoryBudget {
    shared: Arc<Shared>,
}

struct Shared {
    semaphore: Arc<Semaphore>,
    /// The budget in units.
    units: u32,
    /// Units reserved now, and the most ever reserved at once.
    in_use: AtomicUsize,
    peak: AtomicUsize,
}

impl MemoryBudget {
    /// A budget of `bytes` (at least one KiB).
    pub fn new(bytes: usize) -> Self {
        let units = u32::try_from(bytes / UNIT).unwrap_or(u32::MAX).max(1);
        Self {
            shared: Arc::new(Shared {
                semaphore: Arc::new(Semaphore::new(units as usize)),
                units,
                in_use: AtomicUsize::new(0),
                peak: AtomicUsize::new(0),
            }),
        }
    }

    /// The whole budget in bytes.
    pub fn bytes(&self) -> usize {
        self.shared.units as usize * UNIT
    }

    /// The largest part an upload may cut: half the budget, so that a
    /// part being sent and the next one being read always fit together.
    pub fn largest_part(&self) -> usize {
        self.bytes() / 2
    }

    /// Bytes not reserved now.
    pub fn available(&self) -> usize {
        self.shared.semaphore.available_permits() * UNIT
    }

    /// The most bytes reserved at once so far.
    pub fn peak(&self) -> usize {
        self.shared.peak.load(Ordering::Relaxed) * UNIT
    }

    /// Waits until `bytes` (rounded up to whole KiB, at most the whole
    /// budget) are free and reserves them until the reservation drops.
    /// Cancel-safe: a dropped wait reserves nothing.
    pub async fn reserve(&self, bytes: usize) -> Reservation {
        let units = u32::try_from(bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .min(self.shared.units);
        let permit = Arc::clone(&self.shared.semaphore)
            .acquire_many_owned(units)
            .await
            .expect("the budget's semaphore is never closed (nothing calls close)");
        let now = self
            .shared
            .in_use
            .fetch_add(units as usize, Ordering::Relaxed)
            + units as usize;
        self.shared.peak.fetch_max(now, Ordering::Relaxed);
        Reservation {
            permit,
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Default for MemoryBudget {
    fn default() -> Self {
        Self::new(DEFAULT_UPLOAD_MEMORY)
    }
}

impl fmt::Debug for MemoryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBudget")
            .field("bytes", &self.bytes())
            .field("available", &self.available())
            .finish()
    }
}

/// Bytes of the budget held for one part; given back on drop.
pub struct Reservation {
    permit: OwnedSemaphorePermit,
    shared: Arc<Shared>,
}

impl Reservation {
    pub fn bytes(&self) -> usize {
        self.permit.num_permits() * UNIT
    }

    /// Gives back all but `bytes` (rounded up to whole KiB): a part that
    /// came out short, the last one or a small file's only one.
    pub fn shrink_to(&mut self, bytes: usize) {
        let keep = bytes.div_ceil(UNIT);
        let held = self.permit.num_permits();
        if keep < held {
            self.shared.in_use.fetch_sub(held - keep, Ordering::Relaxed);
            // Dropping the split-off permits gives them back.
            drop(self.permit.split(held - keep));
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.shared
            .in_use
            .fetch_sub(self.permit.num_permits(), Ordering::Relaxed);
    }
}

/// The smallest budget for a first part of `part_size`: two parts, a part
/// being sent and the next being read, after providers have raised the
/// size to their minimum (S3: 5 MiB) and alignment (GCS: 256 KiB).
pub fn smallest_budget(part_size: usize) -> usize {
    let first = part_size
        .max(SMALLEST_PART)
        .div_ceil(CHUNK_ALIGNMENT)
        .saturating_mul(CHUNK_ALIGNMENT);
    first.saturating_mul(2)
}

/// A part size grown from `first` by `doublings` doublings, but at most
/// `largest` (half the budget, or a provider's limit), and never below
/// `first`.
pub fn grown(first: usize, doublings: u32, largest: usize) -> usize {
    let factor = 1usize.checked_shl(doublings).unwrap_or(usize::MAX);
    first.saturating_mul(factor).min(largest).max(first)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // allowed in tests (style.md)
mod tests;
