use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use super::*;

const MIB: usize = 1 << 20;
/// Long enough for a loaded CI machine; a deadlock never finishes.
const DEADLINE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reservations_never_exceed_the_budget() {
    let budget = MemoryBudget::new(10 * MIB);
    let held = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for task in 0..32usize {
        let (budget, held, most) = (budget.clone(), held.clone(), most.clone());
        tasks.spawn(async move {
            for round in 0..20usize {
                // 128 KiB to 4 MiB, most not whole KiB.
                let bytes = ((task * 7 + round * 13) % 32 + 1) * MIB / 8 - task;
                let reservation = budget.reserve(bytes).await;
                assert!(reservation.bytes() >= bytes);
                let now =
                    held.fetch_add(reservation.bytes(), Ordering::SeqCst) + reservation.bytes();
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_micros(200)).await;
                held.fetch_sub(reservation.bytes(), Ordering::SeqCst);
            }
        });
    }
    tokio::time::timeout(DEADLINE, async {
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
    })
    .await
    .expect("reservations stalled");
    let most = most.load(Ordering::SeqCst);
    assert!(most <= budget.bytes(), "{most} bytes held at once");
    assert!(budget.peak() <= budget.bytes(), "{}", budget.peak());
    assert!(most > 5 * MIB, "the test never filled the budget: {most}");
    assert_eq!(budget.available(), budget.bytes(), "everything given back");
}

/// One upload as the providers run it: reserve a part (holding no unsent
/// one), hand it to a task that sends it and then drops it, at most
/// `concurrency` in flight.
async fn upload(budget: MemoryBudget, part: usize, parts: usize, concurrency: usize) -> usize {
    let mut in_flight = JoinSet::new();
    let mut sent = 0;
    for _ in 0..parts {
        while in_flight.len() >= concurrency {
            sent += in_flight.join_next().await.unwrap().unwrap();
        }
        let reservation = budget.reserve(part).await;
        in_flight.spawn(async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            drop(reservation);
            1
        });
    }
    while let Some(done) = in_flight.join_next().await {
        sent += done.unwrap();
    }
    sent
}

/// GCS's shape: the next chunk is reserved and read while the current one
/// is sent, and the current one's bytes go back as soon as it is sent.
async fn sequential_upload(budget: MemoryBudget, part: usize, parts: usize) -> usize {
    let mut current = budget.reserve(part).await;
    for _ in 1..parts {
        let send = async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            drop(current);
        };
        let ((), next) = tokio::join!(send, budget.reserve(part));
        current = next;
    }
    drop(current);
    parts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_uploads_share_two_parts_without_deadlock() {
    let part = 5 * MIB;
    let budget = MemoryBudget::new(2 * part);
    let mut uploads = JoinSet::new();
    for index in 0..8 {
        let budget = budget.clone();
        if index % 2 == 0 {
            uploads.spawn(upload(budget, part, 12, 4));
        } else {
            uploads.spawn(sequential_upload(budget, part, 12));
        }
    }
    let sent = tokio::time::timeout(DEADLINE, async {
        let mut sent = 0;
        while let Some(done) = uploads.join_next().await {
            sent += done.unwrap();
        }
        sent
    })
    .await
    .expect("uploads deadlocked on a budget of two parts");
    assert_eq!(sent, 8 * 12);
    assert_eq!(budget.peak(), budget.bytes(), "both parts were in use");
    assert_eq!(budget.available(), budget.bytes());
}

#[tokio::test]
async fn dropped_reservations_and_waits_give_everything_back() {
    let budget = MemoryBudget::new(4 * MIB);
    let whole = budget.reserve(4 * MIB).await;
    assert_eq!(budget.available(), 0);
    // A wait that is cancelled (its task aborted) reserves nothing.
    let waiting = tokio::spawn({
        let budget = budget.clone();
        async move { budget.reserve(MIB).await.bytes() }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!waiting.is_finished(), "reserved past the budget");
    waiting.abort();
    assert!(waiting.await.unwrap_err().is_cancelled());
    drop(whole);
    assert_eq!(budget.available(), budget.bytes());
    // A part held by a task that is aborted mid-send (an upload dropped on
    // failure or Ctrl-C) goes back with the task.
    let (held, mut is_held) = tokio::sync::watch::channel(false);
    let sending = tokio::spawn({
        let budget = budget.clone();
        async move {
            let _part = budget.reserve(3 * MIB).await;
            held.send_replace(true);
            std::future::pending::<()>().await;
        }
    });
    is_held.wait_for(|held| *held).await.unwrap();
    assert_eq!(budget.available(), MIB);
    sending.abort();
    let _ = sending.await;
    assert_eq!(budget.available(), budget.bytes());
    assert_eq!(budget.peak(), budget.bytes());
}

#[tokio::test]
async fn a_short_part_gives_back_what_it_does_not_need() {
    let budget = MemoryBudget::new(8 * MIB);
    let mut part = budget.reserve(4 * MIB).await;
    part.shrink_to(1000);
    assert_eq!(part.bytes(), 1 << 10, "whole KiB");
    assert_eq!(budget.available(), 8 * MIB - (1 << 10));
    part.shrink_to(2 * MIB); // never grows
    assert_eq!(part.bytes(), 1 << 10);
    part.shrink_to(0);
    assert_eq!(budget.available(), 8 * MIB);
    drop(part);
    assert_eq!(budget.available(), 8 * MIB);
}

#[tokio::test]
async fn a_part_larger_than_the_budget_takes_the_whole_budget() {
    let budget = MemoryBudget::new(4 * MIB);
    let part = tokio::time::timeout(DEADLINE, budget.reserve(100 * MIB))
        .await
        .expect("a reservation above the budget must not wait forever");
    assert_eq!(part.bytes(), 4 * MIB);
    assert_eq!(budget.available(), 0);
}

#[test]
fn the_smallest_budget_is_two_first_parts_as_providers_cut_them() {
    for (part_size, want) in [
        (16 * MIB, 32 * MIB),
        (MIB, 10 * MIB),                           // S3 raises parts to 5 MiB
        (5 * MIB + 1, 2 * (5 * MIB + 256 * 1024)), // GCS rounds up to 256 KiB
        (usize::MAX, usize::MAX),
    ] {
        assert_eq!(smallest_budget(part_size), want, "{part_size}");
    }
}

#[test]
fn parts_grow_by_doubling_up_to_the_largest_part() {
    for (first, doublings, largest, want) in [
        (16 * MIB, 0, 128 * MIB, 16 * MIB),
        (16 * MIB, 2, 128 * MIB, 64 * MIB),
        (16 * MIB, 9, 128 * MIB, 128 * MIB),
        (16 * MIB, 9, 100 * MIB, 100 * MIB),
        (16 * MIB, 63, usize::MAX, usize::MAX),
        (16 * MIB, 3, 8 * MIB, 16 * MIB), // never below the first part
        (usize::MAX / 2 + 1, 1, usize::MAX, usize::MAX),
    ] {
        assert_eq!(
            grown(first, doublings, largest),
            want,
            "{first} {doublings} {largest}"
        );
    }
}
