//! How gitbak reaches GCS: the JSON API endpoint, the HTTP client with its
//! time limits, and the credential chain.
//!
//! The chain is Google's application-default credentials, resolved here
//! step by step so that a machine without credentials fails fast with one
//! clear error instead of waiting on an absent metadata server. Everything
//! read from the process environment arrives as a `GcsEnvironment`, so tests
//! pass variants without touching the environment.

use std::path::PathBuf;
use std::time::Duration;

use gcloud_storage::client::google_cloud_auth::credentials::CredentialsFile;
use gcloud_storage::client::ClientConfig;

use super::requests::{strip_query_strings, GcsTimeouts, CREDENTIALS_HINT};
use crate::storage::location::GcsLocation;
use crate::storage::StorageError;

const DEFAULT_ENDPOINT: &str = "https://storage.googleapis.com";
/// The GCE metadata server's link-local address (Google's client libraries' default).
const METADATA_IP: &str = "169.254.169.254";

/// What opening GCS storage takes from the process environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcsEnvironment {
    /// `GOOGLE_APPLICATION_CREDENTIALS`: a credentials JSON file.
    pub credentials_file: Option<PathBuf>,
    /// gcloud's application-default credentials file, used if it exists.
    pub gcloud_credentials_file: Option<PathBuf>,
    /// `STORAGE_EMULATOR_HOST`: an emulator, reached without credentials.
    pub emulator_host: Option<String>,
    /// `GCE_METADATA_HOST`, else the metadata server's link-local address.
    pub metadata_host: String,
    pub timeouts: GcsTimeouts,
}

impl GcsEnvironment {
    pub fn from_process() -> Self {
        let variable = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        // gcloud keeps its configuration in CLOUDSDK_CONFIG, by default ~/.config/gcloud.
        let gcloud_dir = variable("CLOUDSDK_CONFIG")
            .map(PathBuf::from)
            .or_else(|| variable("HOME").map(|home| PathBuf::from(home).join(".config/gcloud")));
        Self {
            credentials_file: variable("GOOGLE_APPLICATION_CREDENTIALS").map(PathBuf::from),
            gcloud_credentials_file: gcloud_dir
                .map(|dir| dir.join("application_default_credentials.json")),
            emulator_host: variable("STORAGE_EMULATOR_HOST"),
            metadata_host: variable("GCE_METADATA_HOST").unwrap_or_else(|| METADATA_IP.to_owned()),
            timeouts: GcsTimeouts::default(),
        }
    }
}

/// The JSON API endpoint, and whether it is an emulator reached without
/// credentials. Precedence: `endpoint=`, `STORAGE_EMULATOR_HOST`,
/// `universe_domain=`, Google's endpoint.
pub fn endpoint(location: &GcsLocation, environment: &GcsEnvironment) -> (String, bool) {
    if let Some(endpoint) = &location.endpoint {
        return (normalize_endpoint(endpoint, "https"), false);
    }
    if let Some(host) = &environment.emulator_host {
        // As in Google's Go and Python clients: a bare host means http, and no credentials.
        return (normalize_endpoint(host, "http"), true);
    }
    match &location.universe_domain {
        Some(domain) => (
            format!("https://storage.{}", domain.trim_matches('/')),
            false,
        ),
        None => (DEFAULT_ENDPOINT.to_owned(), false),
    }
}

/// Adds `default_scheme` to a bare host, and drops a trailing `/` or
/// `/storage/v1` (the form Go's `option.WithEndpoint` takes), since the
/// client appends the API path itself.
fn normalize_endpoint(endpoint: &str, default_scheme: &str) -> String {
    let with_scheme = if endpoint.contains("://") {
        endpoint.to_owned()
    } else {
        format!("{default_scheme}://{endpoint}")
    };
    let trimmed = with_scheme.trim_end_matches('/');
    trimmed
        .strip_suffix("/storage/v1")
        .unwrap_or(trimmed)
        .to_owned()
}

/// The HTTP client for every storage request. No overall or read timeout
/// here: `requests::GcsTimeouts` explains why.
pub fn http_client(
    timeouts: &GcsTimeouts,
) -> Result<reqwest_middleware::ClientWithMiddleware, String> {
    let client = reqwest::Client::builder()
        .connect_timeout(timeouts.connect)
        .tcp_keepalive(Duration::from_secs(30))
        .build()
        .map_err(|error| error.to_string())?;
    Ok(reqwest_middleware::ClientBuilder::new(client).build())
}

/// A `ClientConfig` with the endpoint, HTTP client and credentials for
/// `location`; errors are keyed by `gs://bucket`.
pub async fn client_config(
    location: &GcsLocation,
    environment: &GcsEnvironment,
) -> Result<ClientConfig, StorageError> {
    let bucket_key = format!("gs://{}", location.bucket);
    let (storage_endpoint, is_emulator) = endpoint(location, environment);
    let http = http_client(&environment.timeouts).map_err(|message| StorageError::Other {
        key: bucket_key.clone(),
        message,
    })?;
    let config = ClientConfig {
        storage_endpoint,
        http: Some(http),
        ..ClientConfig::default()
    };
    if location.anonymous || is_emulator {
        return Ok(config.anonymous());
    }
    let denied = |message: String| StorageError::AccessDenied {
        key: bucket_key.clone(),
        message,
    };
    let file = match (&location.private_key_path, &environment.credentials_file) {
        (Some(path), _) => Some((PathBuf::from(path), "private_key_path")),
        (None, Some(path)) => Some((path.clone(), "GOOGLE_APPLICATION_CREDENTIALS")),
        (None, None) => match &environment.gcloud_credentials_file {
            Some(path) if tokio::fs::try_exists(path).await.unwrap_or(false) => {
                Some((path.clone(), "gcloud's application-default credentials"))
            }
            _ => None,
        },
    };
    // Fetching the first token is a request too; bound it like one.
    let limit = environment.timeouts.response;
    if let Some((path, source)) = file {
        let credentials = CredentialsFile::new_from_file(path.to_string_lossy().into_owned())
            .await
            .map_err(|error| {
                denied(format!(
                    "cannot use the Google Cloud credentials file {} (from {source}): {error}; \
                 it must be a service-account or authorized-user JSON key",
                    path.display()
                ))
            })?;
        return match tokio::time::timeout(limit, config.with_credentials(credentials)).await {
            Ok(Ok(config)) => Ok(config),
            Ok(Err(error)) => Err(denied(format!(
                "Google Cloud credentials from {} (from {source}) were refused: {}",
                path.display(),
                strip_query_strings(&error.to_string())
            ))),
            Err(_) => Err(StorageError::Transient {
                key: bucket_key.clone(),
                message: format!(
                    "no access token for the credentials in {} within {} s",
                    path.display(),
                    limit.as_secs()
                ),
            }),
        };
    }
    if !metadata_server_answers(
        &environment.metadata_host,
        environment.timeouts.metadata_probe,
    )
    .await
    {
        return Err(denied(format!(
            "no Google Cloud credentials found; {CREDENTIALS_HINT}"
        )));
    }
    match tokio::time::timeout(limit, config.with_auth()).await {
        Ok(Ok(config)) => Ok(config),
        Ok(Err(error)) => Err(denied(format!(
            "the GCE metadata server gave no credentials: {}; {CREDENTIALS_HINT}",
            strip_query_strings(&error.to_string())
        ))),
        Err(_) => Err(StorageError::Transient {
            key: bucket_key.clone(),
            message: format!(
                "no access token from the GCE metadata server within {} s",
                limit.as_secs()
            ),
        }),
    }
}

/// Whether a GCE metadata server answers at `host` within `limit`. Off
/// Google Cloud nothing listens there, and without this check the SDK would
/// spend several seconds finding that out on every run.
async fn metadata_server_answers(host: &str, limit: Duration) -> bool {
    let Ok(client) = reqwest::Client::builder()
        .connect_timeout(limit)
        .timeout(limit)
        .no_proxy()
        .build()
    else {
        return false;
    };
    let request = client
        .get(format!(
            "http://{host}/computeMetadata/v1/project/project-id"
        ))
        .header("Metadata-Flavor", "Google");
    match request.send().await {
        Ok(response) => {
            response.status().is_success()
                && response
                    .headers()
                    .get("Metadata-Flavor")
                    .is_some_and(|flavor| flavor == "Google")
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn environment() -> GcsEnvironment {
        GcsEnvironment {
            credentials_file: None,
            gcloud_credentials_file: None,
            emulator_host: None,
            metadata_host: "127.0.0.1:9".into(),
            timeouts: GcsTimeouts::default(),
        }
    }

    #[test]
    fn endpoints_by_precedence() {
        let location = |endpoint: Option<&str>, universe: Option<&str>| GcsLocation {
            bucket: "b".into(),
            endpoint: endpoint.map(Into::into),
            universe_domain: universe.map(Into::into),
            ..GcsLocation::default()
        };
        let emulator = GcsEnvironment {
            emulator_host: Some("localhost:9023".into()),
            ..environment()
        };
        for (location, environment, want) in [
            (
                location(None, None),
                environment(),
                ("https://storage.googleapis.com", false),
            ),
            (
                location(Some("127.0.0.1:4443"), None),
                environment(),
                ("https://127.0.0.1:4443", false),
            ),
            (
                location(Some("http://127.0.0.1:4443/"), None),
                emulator.clone(),
                ("http://127.0.0.1:4443", false),
            ),
            (
                location(Some("https://private.test/storage/v1/"), None),
                environment(),
                ("https://private.test", false),
            ),
            (
                location(None, Some("example.test")),
                environment(),
                ("https://storage.example.test", false),
            ),
            (
                location(None, Some("example.test")),
                emulator,
                ("http://localhost:9023", true),
            ),
        ] {
            let (url, is_emulator) = endpoint(&location, &environment);
            assert_eq!((url.as_str(), is_emulator), want, "{location:?}");
        }
    }
}
