//! S3 deletes at scale and under object lock, against moto behind a relay
//! that counts DeleteObjects requests and can refuse deletes of chosen keys.
//!
//! Why a relay refuses: moto, like S3, answers a plain delete of a retained
//! object on an object-lock bucket with a delete marker, not a refusal (the
//! retained version stays). Refusals come from a policy that denies the
//! delete (or from stores that enforce retention on the current object);
//! the relay answers as such a policy would, per key in DeleteObjects. The
//! locks themselves are moto's: gitbak reads them with HeadObject.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    BucketVersioningStatus, ObjectLockLegalHoldStatus, ObjectLockMode, VersioningConfiguration,
};
use gitbak::storage::{Location, StorageError, StorageExt, Versioning, WriteMode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::s3::{open, Moto, SECRET};
use super::scale::at_scale;
use super::{key, small_tuning};

/// Forwards to moto; counts DeleteObjects requests; refuses deletes of the
/// keys in `refused` with AccessDenied.
struct DenyingRelay {
    port: u16,
    refused: Arc<Mutex<HashSet<String>>>,
    batches: Arc<AtomicUsize>,
}

impl DenyingRelay {
    async fn start(upstream: u16, bucket: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let relay = Self {
            port,
            refused: Arc::default(),
            batches: Arc::default(),
        };
        let (refused, batches, bucket) = (
            relay.refused.clone(),
            relay.batches.clone(),
            bucket.to_owned(),
        );
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let context = (refused.clone(), batches.clone(), bucket.clone());
                tokio::spawn(serve(client, upstream, context));
            }
        });
        relay
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn refuse(&self, keys: &[&str]) {
        let mut refused = self.refused.lock().unwrap();
        refused.extend(keys.iter().map(|key| (*key).to_owned()));
    }
}

type Context = (Arc<Mutex<HashSet<String>>>, Arc<AtomicUsize>, String);

/// One connection: moto closes each after one response, so each carries
/// one request.
async fn serve(mut client: TcpStream, upstream: u16, (refused, batches, bucket): Context) {
    let mut buffer = Vec::new();
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break end + 4;
        }
        if !read_more(&mut client, &mut buffer).await {
            return;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut words = head.split(' ');
    let (method, path) = (
        words.next().unwrap_or_default(),
        words.next().unwrap_or_default(),
    );
    let is_refused = |key: &str| refused.lock().unwrap().contains(key);
    if method == "POST" && path.starts_with(&format!("/{bucket}")) && path.contains("?delete") {
        batches.fetch_add(1, Ordering::SeqCst);
        let length = content_length(&head);
        while buffer.len() < head_end + length {
            assert!(
                read_more(&mut client, &mut buffer).await,
                "DeleteObjects body cut short"
            );
        }
        let body = String::from_utf8_lossy(&buffer[head_end..head_end + length]).into_owned();
        let keys: Vec<&str> = body
            .split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split("</Key>").next())
            .collect();
        if keys.iter().any(|key| is_refused(key)) {
            // As S3 answers under a deny policy: 200, an error per refused key.
            let mut errors = String::new();
            for key in keys {
                if is_refused(key) {
                    errors.push_str(&format!(
                        "<Error><Key>{key}</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
                    ));
                } else {
                    delete_upstream(upstream, &bucket, key).await;
                }
            }
            let body = format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{errors}</DeleteResult>"#
            );
            respond(&mut client, "200 OK", &body).await;
            return;
        }
    }
    if method == "DELETE" {
        let key = path
            .strip_prefix(&format!("/{bucket}/"))
            .and_then(|rest| rest.split('?').next());
        if key.is_some_and(is_refused) {
            let body = "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>";
            respond(&mut client, "403 Forbidden", body).await;
            return;
        }
    }
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
        return;
    };
    if server.write_all(&buffer).await.is_ok() {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    }
}

async fn read_more(client: &mut TcpStream, buffer: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 16 << 10];
    match client.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(read) => {
            buffer.extend_from_slice(&chunk[..read]);
            true
        }
    }
}

fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .expect("DeleteObjects carries a Content-Length")
}

async fn respond(client: &mut TcpStream, status: &str, body: &str) {
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = client.write_all(response.as_bytes()).await;
}

async fn delete_upstream(upstream: u16, bucket: &str, key: &str) {
    let mut server = TcpStream::connect(("127.0.0.1", upstream)).await.unwrap();
    // moto refuses anonymous deletes; it does not check signatures.
    let authorization = "AWS4-HMAC-SHA256 Credential=gitbak-test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00";
    let request = format!(
        "DELETE /{bucket}/{key} HTTP/1.1\r\nHost: 127.0.0.1:{upstream}\r\nAuthorization: {authorization}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    server.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    server.read_to_end(&mut response).await.unwrap();
    assert!(
        response.starts_with(b"HTTP/1.1 204"),
        "{}",
        String::from_utf8_lossy(&response)
    );
}

/// The SDK directly, for what gitbak never writes: retention and holds.
fn sdk_client(moto: &Moto) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(moto.endpoint())
        .force_path_style(true)
        .credentials_provider(Credentials::new("gitbak-test", SECRET, None, None, "test"))
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// 1,008 keys (3 of them missing) go in two DeleteObjects requests, and
/// every listing works through a `prefix=`.
#[tokio::test]
async fn s3_at_scale_with_a_prefix_and_two_delete_requests() {
    let moto = Moto::start();
    moto.create_bucket("scale", false);
    let relay = DenyingRelay::start(moto.port(), "scale").await;
    let url = format!(
        "s3://scale?endpoint={}&use_path_style=true&region=us-east-1&prefix=team/",
        relay.endpoint()
    );
    let storage = gitbak::storage::open(&Location::parse(&url).unwrap(), small_tuning())
        .await
        .unwrap();
    at_scale(storage, Versioning::Off).await;
    assert_eq!(
        relay.batches.load(Ordering::SeqCst),
        2,
        "DeleteObjects requests"
    );
}

#[tokio::test]
async fn s3_suspended_versioning_is_reported() {
    let moto = Moto::start();
    moto.create_bucket("suspended", false);
    let sdk = sdk_client(&moto);
    for status in [
        BucketVersioningStatus::Enabled,
        BucketVersioningStatus::Suspended,
    ] {
        sdk.put_bucket_versioning()
            .bucket("suspended")
            .versioning_configuration(VersioningConfiguration::builder().status(status).build())
            .send()
            .await
            .unwrap();
    }
    let storage = open(&moto.endpoint(), "suspended", small_tuning()).await;
    assert_eq!(storage.versioning().await.unwrap(), Versioning::Suspended);
}

#[tokio::test]
async fn s3_refused_deletes_are_locked_only_when_the_object_is_held() {
    let moto = Moto::start();
    moto.create_bucket("worm", true);
    let sdk = sdk_client(&moto);
    let until = DateTime::from(SystemTime::now() + Duration::from_secs(86_400));
    let put = |name: &'static str| {
        sdk.put_object()
            .bucket("worm")
            .key(name)
            .body(ByteStream::from_static(b"bundle"))
    };
    put("held/retained")
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(until)
        .send()
        .await
        .unwrap();
    put("held/legal")
        .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
        .send()
        .await
        .unwrap();
    put("held/free").send().await.unwrap();
    let relay = DenyingRelay::start(moto.port(), "worm").await;
    relay.refuse(&["held/retained", "held/legal", "held/free"]);
    let storage = open(&relay.endpoint(), "worm", small_tuning()).await;
    let free: Vec<_> = (0..4).map(|index| key(&format!("free/{index}"))).collect();
    for free_key in &free {
        storage
            .put_bytes(free_key, b"manifest".to_vec(), WriteMode::CreateOnly)
            .await
            .unwrap();
    }

    let batch = [
        key("held/retained"),
        free[0].clone(),
        key("held/legal"),
        key("held/free"),
        free[1].clone(),
        free[2].clone(),
        free[3].clone(),
    ];
    let results = storage.delete_many(&batch).await;
    assert!(
        matches!(&results[0], Err(StorageError::Locked { key, reason })
            if key == "held/retained" && reason.starts_with("GOVERNANCE retention until ")),
        "{:?}",
        results[0]
    );
    assert!(
        matches!(&results[2], Err(StorageError::Locked { reason, .. }) if reason == "legal hold"),
        "{:?}",
        results[2]
    );
    assert!(
        matches!(&results[3], Err(StorageError::AccessDenied { .. })),
        "a refusal without a lock stays an error: {:?}",
        results[3]
    );
    for index in [1, 4, 5, 6] {
        assert!(results[index].is_ok(), "{:?}", results[index]);
    }
    assert!(
        storage.list("free/").await.unwrap().is_empty(),
        "free objects deleted"
    );
    assert_eq!(
        storage.list("held/").await.unwrap().len(),
        3,
        "held objects stay"
    );
    let locked = storage.delete(&key("held/retained")).await.unwrap_err();
    assert!(matches!(locked, StorageError::Locked { .. }), "{locked}");
    assert!(
        locked
            .to_string()
            .starts_with("held/retained: kept by the store's GOVERNANCE retention until "),
        "{locked}"
    );
    let denied = storage.delete(&key("held/free")).await.unwrap_err();
    assert!(
        matches!(denied, StorageError::AccessDenied { .. }),
        "{denied}"
    );
    // Every object-lock bucket is versioned: deletes free nothing at once.
    assert_eq!(storage.versioning().await.unwrap(), Versioning::On);

    // Without a refusing policy S3 does not refuse: the retained object
    // gets a delete marker and its version stays (moto as S3).
    let direct = open(&moto.endpoint(), "worm", small_tuning()).await;
    direct.delete(&key("held/retained")).await.unwrap();
    assert!(direct.head(&key("held/retained")).await.unwrap().is_none());
    let versions = sdk
        .list_object_versions()
        .bucket("worm")
        .prefix("held/retained")
        .send()
        .await
        .unwrap();
    assert_eq!(versions.versions().len(), 1, "the retained version stays");
    assert_eq!(versions.delete_markers().len(), 1);
}
