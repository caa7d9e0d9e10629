//! The Azure Blob backend against Azurite, the real emulator, which checks
//! SharedKey signatures and SAS tokens.
//!
//! Each test starts its own Azurite on a free port and kills it on drop.
//! Containers and SAS tokens are made with Microsoft's Python SDK from the
//! emulator venv, never through gitbak. Credentials go to
//! `azure::open_with` directly, so no test touches the environment.

use std::io;
use std::net::TcpStream;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use gitbak::storage::azure::{open_with, AzureCredentials, AzureTimeouts};
use gitbak::storage::location::AzureLocation;
use gitbak::storage::{Key, Location, Storage, StorageError, StorageExt, Versioning, WriteMode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};

use super::{
    conformance, emulators_dir, free_port, pattern, small_tuning, Unenforced, INSTALL_HINT,
};

pub(crate) const ACCOUNT: &str = "devstoreaccount1";
/// Azurite's public development key.
pub(crate) const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A running Azurite, killed on drop (also when a test panics).
pub(crate) struct Azurite {
    child: Child,
    pub(crate) port: u16,
    data: tempfile::TempDir,
}

impl Azurite {
    pub(crate) fn start() -> Self {
        let binary = emulators_dir().join("npm/node_modules/.bin/azurite-blob");
        assert!(
            binary.exists(),
            "Azurite is not installed at {}: {INSTALL_HINT}",
            binary.display()
        );
        let data = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = std::fs::File::create(data.path().join("azurite.log")).unwrap();
        let child = Command::new(&binary)
            .args([
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                &port.to_string(),
                "--location",
            ])
            .arg(data.path())
            .args(["--skipApiVersionCheck", "--loose", "--disableTelemetry"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot start {}: {error}; {INSTALL_HINT}", binary.display())
            });
        let mut azurite = Self { child, port, data };
        azurite.wait_until_listening();
        azurite
    }

    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("Azurite exited ({status}): {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "Azurite did not listen within 60 s: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("azurite.log")).unwrap_or_default()
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    /// Runs Python with Microsoft's SDK against this Azurite; returns stdout.
    fn python(&self, script: &str) -> String {
        let python = emulators_dir().join("venv/bin/python");
        assert!(
            python.exists(),
            "the emulator venv is missing at {}: {INSTALL_HINT}",
            python.display()
        );
        let connection = format!(
            "DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint={};",
            self.endpoint()
        );
        let output = Command::new(python)
            .args(["-c", script, &connection, ACCOUNT, KEY])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "python failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    pub(crate) fn create_container(&self, name: &str) {
        self.python(&format!(
            "import sys\nfrom azure.storage.blob import BlobServiceClient\n\
             BlobServiceClient.from_connection_string(sys.argv[1]).create_container({name:?})"
        ));
    }

    /// An account SAS for blob reads, writes, lists and deletes.
    fn account_sas(&self) -> String {
        self.python(
            "import sys, datetime\n\
             from azure.storage.blob import generate_account_sas, ResourceTypes, AccountSasPermissions\n\
             print(generate_account_sas(sys.argv[2], sys.argv[3], ResourceTypes(service=True, container=True, object=True),\n\
                 AccountSasPermissions(read=True, write=True, delete=True, list=True, add=True, create=True),\n\
                 datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)))",
        )
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([name, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {name} failed");
    }

    fn location(&self, container: &str) -> AzureLocation {
        location(&format!(
            "azblob://{container}?domain=127.0.0.1:{}&protocol=http&localemu=true",
            self.port
        ))
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn location(url: &str) -> AzureLocation {
    match Location::parse(url).unwrap() {
        Location::Azure(azure) => azure,
        other => panic!("{url} is not an Azure location: {other}"),
    }
}

fn shared_key() -> AzureCredentials {
    AzureCredentials {
        account: Some(ACCOUNT.into()),
        key: Some(KEY.into()),
        ..Default::default()
    }
}

fn key(text: &str) -> Key {
    Key::new(text).unwrap()
}

async fn open(location: &AzureLocation, credentials: &AzureCredentials) -> Arc<dyn Storage> {
    open_with(
        location,
        small_tuning(),
        credentials,
        AzureTimeouts::default(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn azure_conforms_with_shared_key() {
    let azurite = Azurite::start();
    azurite.create_container("conformance");
    let storage = open(&azurite.location("conformance"), &shared_key()).await;
    assert_eq!(storage.to_string(), "azblob://conformance");
    conformance(storage.clone(), Unenforced::default()).await;
    // Azurite shows no versioning (an account setting), so: Unknown.
    super::scale::at_scale(storage, Versioning::Unknown).await;
}

#[tokio::test]
async fn azure_conforms_with_sas_token() {
    let azurite = Azurite::start();
    azurite.create_container("sas");
    let credentials = AzureCredentials {
        account: Some(ACCOUNT.into()),
        sas_token: Some(azurite.account_sas()),
        ..Default::default()
    };
    let storage = open(&azurite.location("sas"), &credentials).await;
    conformance(storage.clone(), Unenforced::default()).await;
    // The one-level listing is our own request: the SAS must reach it too.
    super::scale::one_level_conforms(storage.as_ref()).await;
}

#[tokio::test]
async fn azure_connection_strings_work() {
    let azurite = Azurite::start();
    azurite.create_container("strings");
    let endpoint = azurite.endpoint();
    let sas = azurite.account_sas();
    // The location's own domain is ignored: the connection string names the endpoint.
    let location = location("azblob://strings");
    for connection in [
        format!("DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint={endpoint}/;"),
        format!("BlobEndpoint={endpoint};SharedAccessSignature={sas}"),
    ] {
        let credentials = AzureCredentials { connection_string: Some(connection), ..Default::default() };
        let storage = open(&location, &credentials).await;
        let path = key("strings/manifest.toml");
        storage.put_bytes(&path, b"v1".to_vec(), WriteMode::Overwrite).await.unwrap();
        assert_eq!(storage.get_bytes(&path).await.unwrap(), b"v1");
        assert_eq!(storage.list("strings/").await.unwrap().len(), 1);
        storage.delete(&path).await.unwrap();
    }
}

#[tokio::test]
async fn azure_missing_container_is_named() {
    let azurite = Azurite::start();
    let storage = open(&azurite.location("no-such-container"), &shared_key()).await;
    let put = storage
        .put_bytes(&key("a/b"), b"x".to_vec(), WriteMode::CreateOnly)
        .await
        .unwrap_err();
    let list = storage.list("a/").await.unwrap_err();
    let head = storage
        .head(&key("a/b"))
        .await
        .expect_err("head must not report a missing container as a missing key");
    let big = storage
        .put(
            &key("a/c"),
            Box::pin(io::Cursor::new(pattern(6 << 20, 1))),
            WriteMode::CreateOnly,
        )
        .await;
    for error in [put, list, head, big.unwrap_err()] {
        let text = error.to_string();
        assert!(
            text.contains("\"no-such-container\"") && text.contains("does not exist"),
            "{text}"
        );
        assert!(!error.is_not_found(), "{text}");
    }
}

#[tokio::test]
async fn azure_wrong_key_is_one_clear_access_denied_line() {
    let azurite = Azurite::start();
    azurite.create_container("locked");
    let wrong_key = KEY.replacen("Eby8", "Fby8", 1);
    let credentials = AzureCredentials {
        key: Some(wrong_key.clone()),
        ..shared_key()
    };
    let storage = open(&azurite.location("locked"), &credentials).await;
    let put = storage
        .put_bytes(&key("a"), b"x".to_vec(), WriteMode::CreateOnly)
        .await
        .unwrap_err();
    let list = storage.list("").await.unwrap_err();
    for error in [put, list] {
        let text = error.to_string();
        assert!(matches!(error, StorageError::AccessDenied { .. }), "{text}");
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.contains("Azure") && text.contains("AZURE_STORAGE_KEY"),
            "{text}"
        );
        assert!(
            !text.contains(&wrong_key) && !text.contains("Fby8") && !text.contains("SharedKey"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn azure_sas_token_never_appears_in_errors() {
    let azurite = Azurite::start();
    let sas = azurite.account_sas();
    let signature: String = url::form_urlencoded::parse(sas.as_bytes())
        .find(|(name, _)| name == "sig")
        .map(|(_, value)| value.into_owned())
        .unwrap();
    let credentials = AzureCredentials {
        account: Some(ACCOUNT.into()),
        sas_token: Some(sas.clone()),
        ..Default::default()
    };
    let missing = open(&azurite.location("missing"), &credentials).await;
    let mut errors = vec![
        missing
            .put_bytes(&key("a"), b"x".to_vec(), WriteMode::CreateOnly)
            .await
            .unwrap_err(),
        missing.list("").await.unwrap_err(),
        missing.get(&key("a")).await.err().unwrap(),
    ];
    // Nothing listens on this port: the transport's error names the URL.
    let refused = location(&format!(
        "azblob://c?domain=127.0.0.1:{}&protocol=http&localemu=true",
        free_port()
    ));
    let started = Instant::now();
    let unreachable = open(&refused, &credentials).await;
    errors.push(
        unreachable
            .put_bytes(&key("a"), b"x".to_vec(), WriteMode::CreateOnly)
            .await
            .unwrap_err(),
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "a refused connection took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(errors.last(), Some(StorageError::Transient { .. })),
        "{:?}",
        errors.last()
    );
    for error in errors {
        let text = format!("{error} {error:?}");
        for secret in [sas.as_str(), signature.as_str(), "sig="] {
            assert!(!text.contains(secret), "{secret:?} in {text}");
        }
        let encoded: String = url::form_urlencoded::byte_serialize(signature.as_bytes()).collect();
        assert!(!text.contains(&encoded), "{text}");
    }
    assert!(!format!("{credentials:?}").contains(&signature));
}

/// A body that pauses the emulator once `after` bytes have been read.
struct PausingBody {
    data: io::Cursor<Vec<u8>>,
    after: u64,
    pause: Option<Box<dyn FnOnce() + Send>>,
}

impl AsyncRead for PausingBody {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.data.position() >= self.after {
            if let Some(pause) = self.pause.take() {
                pause();
            }
        }
        Pin::new(&mut self.data).poll_read(cx, buf)
    }
}

#[tokio::test]
async fn azure_hung_emulator_fails_the_upload_in_bounded_time() {
    let azurite = Arc::new(Azurite::start());
    azurite.create_container("fault");
    let timeouts = AzureTimeouts {
        connect: Duration::from_secs(1),
        response: Duration::from_secs(1),
        per_mebibyte: Duration::from_millis(100),
    };
    let storage = open_with(
        &azurite.location("fault"),
        small_tuning(),
        &shared_key(),
        timeouts,
    )
    .await
    .unwrap();
    let paused = Arc::clone(&azurite);
    let body = PausingBody {
        data: io::Cursor::new(pattern(30 << 20, 5)),
        after: 7 << 20,
        pause: Some(Box::new(move || paused.signal("-STOP"))),
    };
    let started = Instant::now();
    let result = storage
        .put(
            &key("fault/big.bundle"),
            Box::pin(body),
            WriteMode::CreateOnly,
        )
        .await;
    let elapsed = started.elapsed();
    azurite.signal("-CONT");
    assert!(
        matches!(result, Err(StorageError::Transient { .. })),
        "{result:?}"
    );
    assert!(
        elapsed < Duration::from_secs(60),
        "the upload took {elapsed:?} to fail"
    );
    let storage = open(&azurite.location("fault"), &shared_key()).await;
    assert!(
        storage
            .head(&key("fault/big.bundle"))
            .await
            .unwrap()
            .is_none(),
        "a failed upload is visible"
    );
    assert!(
        storage.list("fault/").await.unwrap().is_empty(),
        "a failed upload is listed"
    );
}

/// Forwards TCP to Azurite, but the first Put Block List reaches Azurite
/// while its response is thrown away and the connection cut, as when a
/// response is lost in flight.
/// Returns the port and a flag that turns false once a response was lost.
async fn proxy_losing_first_commit_response(target: u16) -> (u16, Arc<AtomicBool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let armed = Arc::new(AtomicBool::new(true));
    let still_armed = Arc::clone(&armed);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = tokio::net::TcpStream::connect(("127.0.0.1", target))
                .await
                .unwrap();
            tokio::spawn(forward(client, server, Arc::clone(&armed)));
        }
    });
    (port, still_armed)
}

async fn forward(
    client: tokio::net::TcpStream,
    server: tokio::net::TcpStream,
    armed: Arc<AtomicBool>,
) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let losing = Arc::new(AtomicBool::new(false));
    let losing_upstream = Arc::clone(&losing);
    let upstream = tokio::spawn(async move {
        let mut buffer = vec![0u8; 64 << 10];
        let mut tail = Vec::new();
        while let Ok(read) = client_read.read(&mut buffer).await {
            if read == 0 {
                break;
            }
            // Decided before forwarding, so Azurite cannot answer first.
            tail.extend_from_slice(&buffer[..read]);
            let seen = String::from_utf8_lossy(&tail).contains("comp=blocklist");
            if seen && armed.swap(false, Ordering::SeqCst) {
                losing_upstream.store(true, Ordering::SeqCst);
            }
            tail.drain(..tail.len().saturating_sub(32));
            if server_write.write_all(&buffer[..read]).await.is_err() {
                break;
            }
        }
    });
    let mut buffer = vec![0u8; 64 << 10];
    while let Ok(read) = server_read.read(&mut buffer).await {
        if read == 0 {
            break;
        }
        if losing.load(Ordering::SeqCst) {
            // Azurite has answered the commit: it is done. Cut the client off.
            break;
        }
        if client_write.write_all(&buffer[..read]).await.is_err() {
            break;
        }
    }
    upstream.abort();
}

#[tokio::test]
async fn azure_create_only_retry_accepts_its_own_earlier_try() {
    let azurite = Azurite::start();
    azurite.create_container("retry");
    let (proxy, armed) = proxy_losing_first_commit_response(azurite.port).await;
    let through_proxy = location(&format!(
        "azblob://retry?domain=127.0.0.1:{proxy}&protocol=http&localemu=true"
    ));
    let storage = open(&through_proxy, &shared_key()).await;
    let body = pattern(11 << 20, 8);
    let meta = storage
        .put(
            &key("retry/one.bundle"),
            Box::pin(io::Cursor::new(body.clone())),
            WriteMode::CreateOnly,
        )
        .await
        .expect("the retried commit finds its own blob and succeeds");
    assert!(
        !armed.load(Ordering::SeqCst),
        "the proxy never cut a commit response"
    );
    assert_eq!(meta.size, body.len() as u64);
    let mut back = Vec::new();
    storage
        .get(&key("retry/one.bundle"))
        .await
        .unwrap()
        .read_to_end(&mut back)
        .await
        .unwrap();
    assert!(back == body, "the body differs");
    // Different content under the same key is still refused.
    let other = storage
        .put(
            &key("retry/one.bundle"),
            Box::pin(io::Cursor::new(pattern(11 << 20, 9))),
            WriteMode::CreateOnly,
        )
        .await;
    assert!(
        matches!(other, Err(StorageError::AlreadyExists { .. })),
        "{other:?}"
    );
}
