//! The process-wide upload memory budget against each provider's emulator:
//! several multipart uploads at once through a budget of two parts wait
//! for room instead of exceeding it, never deadlock, store every byte, and
//! give all the memory back.

use std::sync::Arc;
use std::time::Duration;

use gitbak::storage::azure::{open_with, AzureCredentials, AzureTimeouts};
use gitbak::storage::{Location, MemoryBudget, Storage, StorageExt, Tuning, WriteMode};

use super::azure::{Azurite, ACCOUNT, KEY};
use super::gcs::Emulator as FakeGcs;
use super::s3::Moto;
use super::{key, pattern, small_tuning};

/// Parts of 5 MiB (S3's minimum), four in flight per upload, from a budget
/// of two parts for the whole process.
fn two_part_budget() -> Tuning {
    Tuning {
        upload_concurrency: 4,
        upload_memory: MemoryBudget::new(10 << 20),
        ..small_tuning()
    }
}

/// Puts `uploads` bodies of a little over two parts each at once, then
/// reads every one back.
async fn uploads_share_the_budget(
    storage: Arc<dyn Storage>,
    budget: &MemoryBudget,
    uploads: usize,
) {
    let bodies: Vec<Vec<u8>> = (0..uploads)
        .map(|index| pattern((11 << 20) + index * 100_003, 40 + index as u64))
        .collect();
    let puts = bodies.iter().enumerate().map(|(index, body)| {
        let (storage, body) = (storage.clone(), body.clone());
        async move {
            let key = key(&format!("budget/{index}.bundle"));
            storage
                .put(
                    &key,
                    Box::pin(std::io::Cursor::new(body)),
                    WriteMode::CreateOnly,
                )
                .await
        }
    });
    let results = tokio::time::timeout(Duration::from_secs(600), futures::future::join_all(puts))
        .await
        .expect("uploads sharing a budget of two parts never finished: a deadlock");
    for (index, result) in results.into_iter().enumerate() {
        let meta = result.unwrap_or_else(|error| panic!("upload {index}: {error}"));
        assert_eq!(meta.size, bodies[index].len() as u64);
    }
    assert_eq!(budget.available(), budget.bytes(), "all memory given back");
    assert_eq!(
        budget.peak(),
        budget.bytes(),
        "uploads had to wait for room"
    );
    for (index, body) in bodies.iter().enumerate() {
        let stored = storage
            .get_bytes(&key(&format!("budget/{index}.bundle")))
            .await
            .unwrap();
        assert!(stored == *body, "upload {index} stored other bytes");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_uploads_share_a_budget_of_two_parts() {
    let moto = Moto::start();
    moto.create_bucket("budget", false);
    let tuning = two_part_budget();
    let budget = tuning.upload_memory.clone();
    let storage = super::s3::open(&moto.endpoint(), "budget", tuning).await;
    uploads_share_the_budget(storage, &budget, 8).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_uploads_share_a_budget_of_two_parts() {
    let azurite = Azurite::start();
    azurite.create_container("budget");
    let url = format!(
        "azblob://budget?domain=127.0.0.1:{}&protocol=http&localemu=true",
        azurite.port
    );
    let Location::Azure(location) = Location::parse(&url).unwrap() else {
        unreachable!("an azblob:// URL")
    };
    let credentials = AzureCredentials {
        account: Some(ACCOUNT.into()),
        key: Some(KEY.into()),
        ..Default::default()
    };
    let tuning = two_part_budget();
    let budget = tuning.upload_memory.clone();
    let storage = open_with(&location, tuning, &credentials, AzureTimeouts::default())
        .await
        .unwrap();
    uploads_share_the_budget(storage, &budget, 4).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gcs_uploads_share_a_budget_of_two_parts() {
    let gcs = FakeGcs::start();
    gcs.create_bucket("budget");
    let tuning = two_part_budget();
    let budget = tuning.upload_memory.clone();
    let storage = gitbak::storage::open(&Location::parse(&gcs.url("budget")).unwrap(), tuning)
        .await
        .unwrap();
    uploads_share_the_budget(storage, &budget, 3).await;
}
