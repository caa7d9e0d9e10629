//! S3 against moto, started per test on a free 127.0.0.1 port.
//!
//! moto does not check signatures unless asked (`INITIAL_NO_AUTH_ACTION_COUNT`),
//! so the wrong-credentials case runs on a moto with authentication on.
//! Signature checking itself is left to real S3.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use gitbak::storage::{Location, Storage, StorageError, StorageExt, Tuning, WriteMode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};

use super::{
    conformance, emulators_dir, free_port, key, pattern, small_tuning, Unenforced, INSTALL_HINT,
};

pub(crate) const SECRET: &str = "gitbak-test-secret-7f3c9a";
/// Timeouts of every S3 client in these tests (see `GITBAK_S3_TIMEOUT_SECS`
/// in src/storage/s3.rs): short, so a stalled server fails a put quickly.
const TIMEOUT_SECS: &str = "10";

/// Credentials and region for the SDK's standard chain, set once for the
/// whole test binary; no profile files and no instance metadata lookups.
fn set_environment() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for (name, value) in [
            ("AWS_ACCESS_KEY_ID", "gitbak-test"),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
            ("AWS_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_CONFIG_FILE", "/nonexistent/gitbak-test/config"),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/gitbak-test/credentials",
            ),
            ("GITBAK_S3_TIMEOUT_SECS", TIMEOUT_SECS),
        ] {
            std::env::set_var(name, value);
        }
        std::env::remove_var("AWS_PROFILE");
        std::env::remove_var("AWS_SESSION_TOKEN");
    });
}

/// The environment a gitbak run needs to reach `Moto` (`set_environment`
/// put the same credentials into this process's environment).
pub(crate) const CREDENTIALS: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "gitbak-test"),
    ("AWS_SECRET_ACCESS_KEY", SECRET),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

/// A moto server of our own, killed on drop (also when a test panics).
pub(crate) struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    pub(crate) fn start() -> Self {
        Self::start_with(&[])
    }

    fn start_with(environment: &[(&str, &str)]) -> Self {
        set_environment();
        let binary = emulators_dir().join("venv/bin/moto_server");
        assert!(
            binary.exists(),
            "moto is not installed at {}; {INSTALL_HINT}",
            binary.display()
        );
        let port = free_port();
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(environment.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", binary.display()));
        let moto = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        // Any answer will do: with authentication on, moto answers 500 to unsigned requests.
        while http(port, "GET", "/", &[]).is_none() {
            assert!(
                Instant::now() < deadline,
                "moto did not answer on 127.0.0.1:{port} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `--path` for `bucket` on this server, as gitbak runs take it.
    pub(crate) fn url(&self, bucket: &str) -> String {
        format!(
            "s3://{bucket}?endpoint={}&use_path_style=true&region=us-east-1",
            self.endpoint()
        )
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Creates a bucket through moto's S3 API, which takes unsigned requests.
    pub(crate) fn create_bucket(&self, bucket: &str, object_lock: bool) {
        let headers: &[&str] = if object_lock {
            &["x-amz-bucket-object-lock-enabled: true"]
        } else {
            &[]
        };
        assert_eq!(
            http(self.port, "PUT", &format!("/{bucket}"), headers),
            Some(200),
            "create bucket {bucket}"
        );
    }

    pub(crate) fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, signal).unwrap();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One plain HTTP/1.1 request; the status code, or `None` if nobody answered.
fn http(port: u16, method: &str, path: &str, headers: &[&str]) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let extra: String = headers
        .iter()
        .map(|header| format!("{header}\r\n"))
        .collect();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let status_line = String::from_utf8_lossy(&response[..response.len().min(32)]).into_owned();
    status_line.split(' ').nth(1)?.parse().ok()
}

pub(crate) async fn open(endpoint: &str, bucket: &str, tuning: Tuning) -> Arc<dyn Storage> {
    let url = format!("s3://{bucket}?endpoint={endpoint}&use_path_style=true&region=us-east-1");
    gitbak::storage::open(&Location::parse(&url).unwrap(), tuning)
        .await
        .unwrap()
}

#[tokio::test]
async fn s3_conforms() {
    let moto = Moto::start();
    moto.create_bucket("conformance", false);
    let storage = open(&moto.endpoint(), "conformance", small_tuning()).await;
    assert_eq!(storage.to_string(), "s3://conformance");
    conformance(storage, Unenforced::default()).await;
}

/// Object-lock buckets refuse writes without checksums; `immutable` sends
/// them, on parts too, with a prefix as gitaly's URLs often have.
#[tokio::test]
async fn s3_immutable_writes_to_an_object_lock_bucket() {
    let moto = Moto::start();
    moto.create_bucket("locked", true);
    let url = format!(
        "s3://locked?endpoint={}&use_path_style=true&prefix=gitaly/",
        moto.endpoint()
    );
    let tuning = Tuning {
        immutable: true,
        ..small_tuning()
    };
    let storage = gitbak::storage::open(&Location::parse(&url).unwrap(), tuning)
        .await
        .unwrap();
    let big = pattern(11 << 20, 5);
    storage
        .put(
            &key("b/multi"),
            Box::pin(std::io::Cursor::new(big.clone())),
            WriteMode::CreateOnly,
        )
        .await
        .unwrap();
    storage
        .put_bytes(&key("b/small"), b"manifest".to_vec(), WriteMode::CreateOnly)
        .await
        .unwrap();
    let mut back = Vec::new();
    storage
        .get(&key("b/multi"))
        .await
        .unwrap()
        .read_to_end(&mut back)
        .await
        .unwrap();
    assert!(back == big, "multipart body differs");
    let conflict = storage
        .put_bytes(&key("b/multi"), b"x".to_vec(), WriteMode::CreateOnly)
        .await;
    assert!(
        matches!(conflict, Err(StorageError::AlreadyExists { .. })),
        "{conflict:?}"
    );
    let bare = open(&moto.endpoint(), "locked", small_tuning()).await;
    assert!(
        bare.head(&key("gitaly/b/small")).await.unwrap().is_some(),
        "prefix not applied"
    );
}

#[tokio::test]
async fn s3_missing_bucket_is_named() {
    let moto = Moto::start();
    let storage = open(&moto.endpoint(), "no-such-bucket", small_tuning()).await;
    let put = storage
        .put_bytes(&key("a"), b"x".to_vec(), WriteMode::CreateOnly)
        .await
        .unwrap_err()
        .to_string();
    assert!(put.contains("\"no-such-bucket\" does not exist"), "{put}");
    let list = storage.list("").await.unwrap_err().to_string();
    assert!(list.contains("\"no-such-bucket\" does not exist"), "{list}");
}

#[tokio::test]
async fn s3_wrong_credentials_get_one_clear_line() {
    // Authentication on: every request must come from a key moto's IAM knows.
    let moto = Moto::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]);
    let storage = open(&moto.endpoint(), "bucket", small_tuning()).await;
    let error = storage
        .put_bytes(&key("a/b"), b"x".to_vec(), WriteMode::CreateOnly)
        .await
        .unwrap_err();
    assert!(
        matches!(error, StorageError::AccessDenied { .. }),
        "{error:?}"
    );
    let line = error.to_string();
    assert!(line.starts_with("a/b: access denied: S3"), "{line}");
    assert!(
        line.contains("AWS_ACCESS_KEY_ID") && line.contains("AWS_SECRET_ACCESS_KEY"),
        "{line}"
    );
    assert!(!line.contains('\n') && !line.contains(SECRET), "{line}");
    assert!(!format!("{error:?}").contains(SECRET), "{error:?}");
}

/// A body that stops moto with SIGSTOP once `stop_after` bytes were read.
struct StallingBody {
    data: std::io::Cursor<Vec<u8>>,
    stop_after: u64,
    stop: Box<dyn Fn() + Send>,
    stopped: bool,
}

impl AsyncRead for StallingBody {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.stopped && self.data.position() >= self.stop_after {
            self.stopped = true;
            (self.stop)();
        }
        Pin::new(&mut self.data).poll_read(cx, buf)
    }
}

#[tokio::test]
async fn s3_stalled_server_fails_the_upload_in_bounded_time_and_leaves_nothing() {
    let moto = Moto::start();
    moto.create_bucket("stall", false);
    let tuning = Tuning {
        retries: 1,
        ..small_tuning()
    };
    let storage = open(&moto.endpoint(), "stall", tuning).await;
    let pid = moto.child.id() as i32;
    let body = StallingBody {
        data: std::io::Cursor::new(pattern(22 << 20, 11)),
        // In the third part: the first two are on their way or done.
        stop_after: 12 << 20,
        stop: Box::new(move || {
            let pid = rustix::process::Pid::from_raw(pid).unwrap();
            rustix::process::kill_process(pid, rustix::process::Signal::STOP).unwrap();
        }),
        stopped: false,
    };
    let started = Instant::now();
    let result = storage
        .put(
            &key("stalled/part.bundle"),
            Box::pin(body),
            WriteMode::CreateOnly,
        )
        .await;
    let elapsed = started.elapsed();
    moto.signal(rustix::process::Signal::CONT);
    assert!(
        matches!(result, Err(StorageError::Transient { .. })),
        "{result:?}"
    );
    // Two attempts per part, then two for the abort, 10 s each, plus backoff.
    assert!(elapsed < Duration::from_secs(90), "took {elapsed:?}");
    assert!(
        storage
            .head(&key("stalled/part.bundle"))
            .await
            .unwrap()
            .is_none(),
        "object visible after a failed upload"
    );
    assert!(storage.list("stalled/").await.unwrap().is_empty());
}

/// A relay in front of moto that, once armed with the start of a request
/// line, forwards that request and then drops the connection instead of
/// the response: S3 acted, the client never heard.
struct LossyProxy {
    port: u16,
    armed: Arc<Mutex<Option<Vec<u8>>>>,
    dropped: Arc<AtomicUsize>,
}

impl LossyProxy {
    async fn start(upstream: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
        let dropped = Arc::new(AtomicUsize::new(0));
        let (armed_for_loop, dropped_for_loop) = (armed.clone(), dropped.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = tokio::net::TcpStream::connect(("127.0.0.1", upstream))
                    .await
                    .unwrap();
                relay(
                    client,
                    server,
                    armed_for_loop.clone(),
                    dropped_for_loop.clone(),
                );
            }
        });
        Self {
            port,
            armed,
            dropped,
        }
    }

    fn arm(&self, request_start: &str) {
        *self.armed.lock().unwrap() = Some(request_start.as_bytes().to_vec());
    }
}

fn relay(
    client: tokio::net::TcpStream,
    server: tokio::net::TcpStream,
    armed: Arc<Mutex<Option<Vec<u8>>>>,
    dropped: Arc<AtomicUsize>,
) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let lose_response = Arc::new(AtomicBool::new(false));
    let lose = lose_response.clone();
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 64 << 10];
        while let Ok(read) = client_read.read(&mut buffer).await {
            if read == 0 {
                break;
            }
            {
                let mut armed = armed.lock().unwrap();
                if armed
                    .as_ref()
                    .is_some_and(|start| buffer[..read].windows(start.len()).any(|w| w == start))
                {
                    *armed = None;
                    lose.store(true, Ordering::SeqCst);
                }
            }
            if server_write.write_all(&buffer[..read]).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 64 << 10];
        while let Ok(read) = server_read.read(&mut buffer).await {
            if read == 0 {
                break;
            }
            if lose_response.load(Ordering::SeqCst) {
                dropped.fetch_add(1, Ordering::SeqCst);
                break; // dropping both halves closes the client's connection
            }
            if client_write.write_all(&buffer[..read]).await.is_err() {
                break;
            }
        }
    });
}

/// The SDK retries a create-only request whose response was lost; the retry
/// finds the object, and the put recognises it as its own.
#[tokio::test]
async fn s3_retry_after_a_lost_response_finds_its_own_object() {
    let moto = Moto::start();
    moto.create_bucket("lossy", false);
    let proxy = LossyProxy::start(moto.port).await;
    let storage = open(
        &format!("http://127.0.0.1:{}", proxy.port),
        "lossy",
        small_tuning(),
    )
    .await;

    proxy.arm("PUT /lossy/lost/small?");
    storage
        .put_bytes(
            &key("lost/small"),
            b"manifest".to_vec(),
            WriteMode::CreateOnly,
        )
        .await
        .unwrap();
    assert_eq!(
        proxy.dropped.load(Ordering::SeqCst),
        1,
        "the response was not dropped"
    );
    assert_eq!(
        storage.get_bytes(&key("lost/small")).await.unwrap(),
        b"manifest"
    );

    let big = pattern(11 << 20, 13);
    proxy.arm("POST /lossy/lost/multi?uploadId=");
    let meta = storage
        .put(
            &key("lost/multi"),
            Box::pin(std::io::Cursor::new(big.clone())),
            WriteMode::CreateOnly,
        )
        .await
        .unwrap();
    assert_eq!(
        proxy.dropped.load(Ordering::SeqCst),
        2,
        "the response was not dropped"
    );
    assert_eq!(meta.size, big.len() as u64);

    // Someone else's object is still a conflict.
    let conflict = storage
        .put_bytes(
            &key("lost/small"),
            b"manifest".to_vec(),
            WriteMode::CreateOnly,
        )
        .await;
    assert!(
        matches!(conflict, Err(StorageError::AlreadyExists { .. })),
        "{conflict:?}"
    );
}
