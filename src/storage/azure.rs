//! Azure Blob Storage (`azblob://CONTAINER`) through Microsoft's
//! `azure_storage_blob` 1.x SDK.
//!
//! Credentials come from the variables Gitaly admins already set for
//! go-cloud (`auth.rs`); every request passes our pipeline (`pipeline.rs`:
//! timeouts, retries, SharedKey signing); uploads stream as blocks
//! (`upload.rs`); errors become one redacted line (`errors.rs`). SDK types
//! never leave these files. The container must exist: gitbak never creates it.

mod auth;
mod delete;
mod errors;
mod listing;
mod pipeline;
mod shared_key;
mod upload;

use std::fmt;
use std::io;
use std::num::NonZero;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use azure_core::http::policies::Policy;
use azure_storage_blob::models::{BlobClientDownloadOptions, BlobClientGetPropertiesResultHeaders};
use azure_storage_blob::{BlobContainerClient, BlobContainerClientOptions, BlockBlobClient};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};

pub use auth::AzureCredentials;

use super::bulk::refine_refusal;
use super::location::AzureLocation;
use super::{
    ByteReader, DirEntry, Key, ObjectMeta, Storage, StorageError, Tuning, Versioning, WriteMode,
};
use auth::Auth;
use errors::ErrorContext;
use listing::Hierarchy;
use shared_key::SharedKeyPolicy;

/// Download ranges: 2 in flight of 4 MiB, and the SDK buffers at most twice
/// that, so a get holds about 16 MiB.
const DOWNLOAD_PARALLEL: usize = 2;
const DOWNLOAD_PARTITION: usize = 4 << 20;

/// How long gitbak waits for Azure before a try counts as failed (and is
/// retried, `Tuning::retries` times).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AzureTimeouts {
    /// TCP and TLS connection setup.
    pub connect: Duration,
    /// From sending a request to its response headers, and between two
    /// chunks of a download.
    pub response: Duration,
    /// Added to `response` per MiB of request body: sending it is part of
    /// the wait (2 s/MiB tolerates links down to 512 KiB/s).
    pub per_mebibyte: Duration,
}

impl Default for AzureTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            response: Duration::from_secs(60),
            per_mebibyte: Duration::from_secs(2),
        }
    }
}

/// Opens the container a location names, with credentials from the
/// environment (`AzureCredentials::from_env`).
pub async fn open(
    location: &AzureLocation,
    tuning: Tuning,
) -> Result<Arc<dyn Storage>, StorageError> {
    open_with(
        location,
        tuning,
        &AzureCredentials::from_env(),
        AzureTimeouts::default(),
    )
    .await
}

/// `open` with explicit credentials and timeouts.
pub async fn open_with(
    location: &AzureLocation,
    tuning: Tuning,
    credentials: &AzureCredentials,
    timeouts: AzureTimeouts,
) -> Result<Arc<dyn Storage>, StorageError> {
    let display = format!("azblob://{}", location.container);
    let config_error = |message: String| StorageError::Other {
        key: display.clone(),
        message,
    };
    let resolved = auth::resolve(location, credentials).map_err(config_error)?;
    let errors = ErrorContext {
        container: location.container.clone(),
        account: resolved.account.clone(),
        redactor: resolved.redactor,
        access_hint: resolved.access_hint,
    };
    let (credential, signer) = match resolved.auth {
        Auth::SharedKey(key) => {
            let signer: Arc<dyn Policy> =
                Arc::new(SharedKeyPolicy::new(resolved.account.clone(), key));
            (None, Some(signer))
        }
        Auth::Sas => (None, None),
        Auth::EntraId => (
            Some(auth::entra_id_credential().map_err(|error| errors.map(&display, error))?),
            None,
        ),
    };
    let client_options =
        pipeline::client_options(timeouts, tuning.retries, signer).map_err(config_error)?;
    let mut container_url = resolved.service_url;
    container_url
        .path_segments_mut()
        .map_err(|()| config_error("the Azure service URL cannot take a container path".into()))?
        .push(&location.container);
    let options = BlobContainerClientOptions {
        client_options: client_options.clone(),
        ..Default::default()
    };
    let hierarchy = Hierarchy::new(
        container_url.clone(),
        credential.clone(),
        client_options,
        options.version.clone(),
    );
    let container = BlobContainerClient::new(container_url, credential, Some(options))
        .map_err(|error| errors.map(&display, error))?;
    Ok(Arc::new(AzureStorage {
        container,
        hierarchy,
        display,
        tuning,
        timeouts,
        errors,
    }))
}

pub(super) struct AzureStorage {
    container: BlobContainerClient,
    hierarchy: Hierarchy,
    display: String,
    tuning: Tuning,
    timeouts: AzureTimeouts,
    errors: ErrorContext,
}

impl fmt::Display for AzureStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

impl AzureStorage {
    fn block_blob(&self, key: &Key) -> BlockBlobClient {
        self.container.blob_client(key.as_str()).block_blob_client()
    }

    /// Size, last-modified time and our SHA-256 metadata; `None` if missing.
    async fn properties(
        &self,
        key: &Key,
    ) -> Result<Option<(ObjectMeta, Option<String>)>, StorageError> {
        let response = match self
            .container
            .blob_client(key.as_str())
            .get_properties(None)
            .await
        {
            Ok(response) => response,
            Err(error) => {
                return match self.errors.map(key.as_str(), error) {
                    StorageError::NotFound { .. } => Ok(None),
                    other => Err(other),
                }
            }
        };
        let read_error = |error| self.errors.map(key.as_str(), error);
        let size = response.content_length().map_err(read_error)?.unwrap_or(0);
        let modified = response
            .last_modified()
            .map_err(read_error)?
            .map_or(SystemTime::UNIX_EPOCH, SystemTime::from);
        let sha256 = response
            .metadata()
            .map_err(read_error)?
            .remove(upload::SHA256_METADATA);
        Ok(Some((
            ObjectMeta {
                key: key.clone(),
                size,
                modified,
            },
            sha256,
        )))
    }
}

#[async_trait]
impl Storage for AzureStorage {
    async fn put(
        &self,
        key: &Key,
        body: ByteReader,
        mode: WriteMode,
    ) -> Result<ObjectMeta, StorageError> {
        upload::put(self, key, body, mode).await
    }

    async fn get(&self, key: &Key) -> Result<ByteReader, StorageError> {
        let options = BlobClientDownloadOptions {
            parallel: NonZero::new(DOWNLOAD_PARALLEL),
            partition_size: NonZero::new(DOWNLOAD_PARTITION),
            ..Default::default()
        };
        let download = self
            .container
            .blob_client(key.as_str())
            .download(Some(options))
            .await
            .map_err(|error| self.errors.map(key.as_str(), error))?;
        let errors = self.errors.clone();
        let key_text = key.to_string();
        let chunks = download
            .body
            .map_err(move |error| io::Error::other(errors.map(&key_text, error).to_string()));
        let chunks = with_stall_limit(chunks, self.timeouts.response);
        Ok(Box::pin(tokio_util::io::StreamReader::new(chunks)))
    }

    async fn head(&self, key: &Key) -> Result<Option<ObjectMeta>, StorageError> {
        Ok(self.properties(key).await?.map(|(meta, _)| meta))
    }

    fn list_stream<'a>(&'a self, prefix: &str) -> BoxStream<'a, Result<ObjectMeta, StorageError>> {
        self.flat(prefix)
    }

    fn list_dir_stream<'a>(
        &'a self,
        prefix: &str,
    ) -> BoxStream<'a, Result<DirEntry, StorageError>> {
        self.one_level(prefix)
    }

    async fn delete(&self, key: &Key) -> Result<(), StorageError> {
        match self.container.blob_client(key.as_str()).delete(None).await {
            Ok(_) => Ok(()),
            Err(error) => match self.errors.map(key.as_str(), error) {
                StorageError::NotFound { .. } => Ok(()),
                other => Err(refine_refusal(other, self.hold(key)).await),
            },
        }
    }

    async fn versioning(&self) -> Result<Versioning, StorageError> {
        self.container_versioning().await
    }
}

/// Fails a download that delivers nothing for `limit`, so a server that
/// stops mid-body cannot hang a restore.
fn with_stall_limit<S>(
    chunks: S,
    limit: Duration,
) -> impl Stream<Item = io::Result<bytes::Bytes>> + Send
where
    S: Stream<Item = io::Result<bytes::Bytes>> + Send + Unpin,
{
    futures::stream::unfold(Some(chunks), move |state| async move {
        let mut chunks = state?;
        match tokio::time::timeout(limit, chunks.next()).await {
            Ok(Some(chunk)) => Some((chunk, Some(chunks))),
            Ok(None) => None,
            Err(_) => {
                let message = format!("Azure Blob Storage sent nothing for {} s", limit.as_secs());
                Some((Err(io::Error::new(io::ErrorKind::TimedOut, message)), None))
            }
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // allowed in tests (style.md)
mod tests {
    use super::*;
    use azure_core::credentials::Secret;
    use azure_core::http::{Method, Request, Url};

    /// The Azurite development key (public, documented).
    const DEVELOPMENT_KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    /// The pinned request and signature come from Microsoft's Python SDK
    /// (azure-storage-blob 12.31.1, in the emulator venv):
    ///
    /// ```python
    /// from azure.core.pipeline import PipelineContext, PipelineRequest
    /// from azure.core.pipeline.transport import HttpRequest
    /// from azure.storage.blob._shared.authentication import SharedKeyCredentialPolicy
    /// request = HttpRequest("PUT", "http://127.0.0.1:10000/devstoreaccount1/backups/repos%2Fa.bundle?comp=blocklist&timeout=30")
    /// request.headers = {"Content-Length": "123", "Content-Type": "application/xml", "If-None-Match": "*",
    ///     "x-ms-date": "Tue, 03 Nov 2026 10:00:00 GMT", "x-ms-version": "2026-04-06",
    ///     "x-ms-meta-gitbak_sha256": "e3b0c442", "x-ms-client-request-id": "0b4f3c1e-0000-4000-8000-000000000000"}
    /// policy = SharedKeyCredentialPolicy("devstoreaccount1", KEY)
    /// policy.on_request(PipelineRequest(request, PipelineContext(None)))
    /// print(request.headers["Authorization"])  # and the string it signed, via _add_authorization_header
    /// ```
    const PYTHON_STRING_TO_SIGN: &str = "PUT\n\n\n123\n\napplication/xml\n\n\n\n*\n\n\n\
        x-ms-client-request-id:0b4f3c1e-0000-4000-8000-000000000000\n\
        x-ms-date:Tue, 03 Nov 2026 10:00:00 GMT\n\
        x-ms-meta-gitbak_sha256:e3b0c442\n\
        x-ms-version:2026-04-06\n\
        /devstoreaccount1/devstoreaccount1/backups/repos%2Fa.bundle\ncomp:blocklist\ntimeout:30";
    const PYTHON_AUTHORIZATION: &str =
        "SharedKey devstoreaccount1:VqKW+5Klo9Mhq9Pa0PpTSd6eUvhMMDafDUtzPWoGuAg=";

    #[test]
    fn shared_key_signature_matches_microsofts_python_sdk() {
        let url = Url::parse("http://127.0.0.1:10000/devstoreaccount1/backups/repos%2Fa.bundle?comp=blocklist&timeout=30")
            .unwrap();
        let mut request = Request::new(url, Method::Put);
        // No Content-Length header: the transport adds it later, so the
        // signer must take it from the body.
        request.insert_header("content-type", "application/xml");
        request.insert_header("if-none-match", "*");
        request.insert_header("x-ms-version", "2026-04-06");
        request.insert_header("x-ms-meta-gitbak_sha256", "e3b0c442");
        request.insert_header(
            "x-ms-client-request-id",
            "0b4f3c1e-0000-4000-8000-000000000000",
        );
        request.set_body(vec![b'x'; 123]);
        let policy = SharedKeyPolicy::new("devstoreaccount1".into(), Secret::new(DEVELOPMENT_KEY));
        let now = azure_core::time::parse_rfc7231("Tue, 03 Nov 2026 10:00:00 GMT").unwrap();
        policy.sign(&mut request, now).unwrap();
        assert_eq!(policy.string_to_sign(&request), PYTHON_STRING_TO_SIGN);
        assert_eq!(
            request.headers().get_optional_str(&"authorization".into()),
            Some(PYTHON_AUTHORIZATION)
        );
        assert!(
            !format!("{policy:?}").contains("Eby8"),
            "the key leaks through Debug"
        );
    }

    #[test]
    fn empty_body_signs_no_content_length() {
        let url = Url::parse("http://h/acct/c?restype=container&comp=list&prefix=a%2Fb&include=metadata&include=deleted")
            .unwrap();
        let request = Request::new(url, Method::Get);
        let policy = SharedKeyPolicy::new("acct".into(), Secret::new(DEVELOPMENT_KEY));
        let signed = policy.string_to_sign(&request);
        assert!(signed.starts_with("GET\n\n\n\n"), "{signed:?}");
        assert!(
            signed.ends_with(
                "/acct/acct/c\ncomp:list\ninclude:deleted,metadata\nprefix:a/b\nrestype:container"
            ),
            "{signed:?}"
        );
    }

    #[tokio::test]
    async fn downloads_that_stall_fail() {
        let stalled = futures::stream::pending::<io::Result<bytes::Bytes>>();
        let mut chunks = Box::pin(with_stall_limit(stalled, Duration::from_millis(20)));
        let error = chunks.next().await.unwrap().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(chunks.next().await.is_none());
    }
}
