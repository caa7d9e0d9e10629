//! One GCS request at a time: time limits, retries with backoff, and the
//! mapping of failures to `StorageError`.
//!
//! Error text is built here and only here, so that no request URL reaches a
//! message: a resumable upload's session URI is a bearer secret, and
//! reqwest's `Display` prints the URL of the failed request.

use std::future::Future;
use std::hash::BuildHasher;
use std::time::Duration;

use gcloud_storage::http::Error as HttpError;

use crate::storage::StorageError;

/// The environment variables a user can set to give gitbak GCS access.
pub const CREDENTIALS_HINT: &str = "set GOOGLE_APPLICATION_CREDENTIALS to a service-account JSON key file, \
     pass private_key_path=FILE in the gs:// URL, or run where the GCE metadata server provides an account \
     (GCE_METADATA_HOST); for an emulator add anonymous=true or set STORAGE_EMULATOR_HOST";

/// First retry delay; each further retry doubles it, up to `BACKOFF_MAX`.
const BACKOFF_FIRST: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Time limits for requests to GCS. reqwest's own read timeout is not used:
/// it also covers sending the request body, so it would cut off a large
/// upload chunk on a slow link. Each request instead gets `response` plus
/// `per_mebibyte` for every MiB it sends, and a download `response` between
/// two pieces of its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcsTimeouts {
    /// TCP and TLS connection set-up.
    pub connect: Duration,
    /// Waiting for a response, or for the next piece of a download.
    pub response: Duration,
    /// Extra time per MiB of request body (the slowest upload rate accepted).
    pub per_mebibyte: Duration,
    /// Asking the GCE metadata server whether it is there at all.
    pub metadata_probe: Duration,
}

impl Default for GcsTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            response: Duration::from_secs(60),
            // At least 0.5 MiB/s: a 64 MiB chunk gets 60 s + 128 s.
            per_mebibyte: Duration::from_secs(2),
            metadata_probe: Duration::from_secs(2),
        }
    }
}

impl GcsTimeouts {
    /// The time limit for one request sending `body_bytes`.
    pub fn for_body(&self, body_bytes: usize) -> Duration {
        let mebibytes = body_bytes as f64 / f64::from(1u32 << 20);
        self.response + self.per_mebibyte.mul_f64(mebibytes)
    }
}

/// Why one request failed.
#[derive(Debug)]
pub enum Failure {
    TimedOut(Duration),
    Http(HttpError),
    /// GCS answered, but not as the protocol says it should.
    Protocol(&'static str),
    /// A download's body ended before the object's size was reached.
    EndedEarly,
}

impl Failure {
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::TimedOut(_) | Self::Protocol(_) | Self::EndedEarly => None,
            Self::Http(HttpError::Response(response)) => Some(response.code),
            Self::Http(HttpError::HttpClient(error) | HttpError::RawResponse(error, _)) => {
                error.status().map(|status| status.as_u16())
            }
            Self::Http(_) => None,
        }
    }

    /// Worth another attempt: time-outs, throttling, server errors and
    /// broken connections (GCS's retry strategy).
    pub fn is_transient(&self) -> bool {
        match (self, self.status()) {
            (_, Some(status)) => matches!(status, 408 | 429 | 500..=599),
            (Self::TimedOut(_) | Self::EndedEarly, None) => true,
            (Self::Protocol(_), None) => false,
            (Self::Http(HttpError::HttpClient(error) | HttpError::RawResponse(error, _)), None) => {
                error.is_timeout() || error.is_connect() || error.is_request() || error.is_body()
            }
            // A token refresh is an HTTP request too; a revoked key fails every attempt alike.
            (Self::Http(HttpError::TokenSource(_) | HttpError::HttpMiddleware(_)), None) => true,
            (Self::Http(_), None) => false,
        }
    }

    /// A message without URLs or credentials.
    pub fn describe(&self) -> String {
        let text = match self {
            Self::TimedOut(limit) => format!("no response within {} s", limit.as_secs_f32()),
            Self::Protocol(problem) => (*problem).to_owned(),
            Self::EndedEarly => "the download ended before the whole object arrived".to_owned(),
            Self::Http(HttpError::Response(response)) => {
                format!("HTTP {}: {}", response.code, response.message)
            }
            Self::Http(HttpError::HttpClient(error)) => describe_reqwest(error),
            Self::Http(HttpError::RawResponse(error, detail)) => {
                format!("{}: {detail}", describe_reqwest(error))
            }
            Self::Http(HttpError::TokenSource(error)) => {
                format!(
                    "could not get an access token: {}",
                    error_chain(error.as_ref())
                )
            }
            Self::Http(HttpError::HttpMiddleware(error)) => error_chain(error.as_ref()),
            Self::Http(other) => error_chain(other),
        };
        strip_query_strings(&text)
    }

    /// The `StorageError` for a failure on `key` (an object name, or
    /// `gs://bucket` for the bucket as a whole).
    pub fn into_storage_error(self, key: &str) -> StorageError {
        let message = self.describe();
        let key = key.to_owned();
        match self.status() {
            Some(404) => StorageError::NotFound { key },
            Some(409 | 412) => StorageError::AlreadyExists { key },
            Some(401 | 403) => StorageError::AccessDenied {
                key,
                message: format!(
                    "Google Cloud Storage refused the request ({message}); {CREDENTIALS_HINT}"
                ),
            },
            _ if matches!(self, Self::Http(HttpError::TokenSource(_))) => {
                StorageError::AccessDenied {
                    key,
                    message: format!("Google Cloud Storage: {message}; {CREDENTIALS_HINT}"),
                }
            }
            _ if self.is_transient() => StorageError::Transient {
                key,
                message: format!("Google Cloud Storage: {message}"),
            },
            _ => StorageError::Other {
                key,
                message: format!("Google Cloud Storage: {message}"),
            },
        }
    }
}

/// reqwest's `Display` names the request URL; its kind and sources do not.
fn describe_reqwest(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "cannot connect".to_owned()
    } else if let Some(status) = error.status() {
        format!("HTTP {status}")
    } else if error.is_decode() {
        "unreadable response".to_owned()
    } else if error.is_body() {
        "body transfer failed".to_owned()
    } else {
        "request failed".to_owned()
    };
    match std::error::Error::source(error) {
        Some(source) => format!("{kind}: {}", error_chain(source)),
        None => kind,
    }
}

/// `error: source: source…`, skipping a source that repeats its parent.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut current = error.source();
    while let Some(source) = current {
        let part = source.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        current = source.source();
    }
    text
}

/// Cuts the query string off every URL in `text`: a resumable session URI
/// or a signed URL carries its secret there. The last line of defence, as
/// the messages built above should hold no URL at all.
pub fn strip_query_strings(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = [rest.find("http://"), rest.find("https://")]
        .into_iter()
        .flatten()
        .min()
    {
        out.push_str(&rest[..start]);
        let url_len = rest[start..]
            .find(|c: char| c.is_whitespace() || c == ')' || c == '"')
            .unwrap_or(rest.len() - start);
        let url = &rest[start..start + url_len];
        out.push_str(url.split('?').next().unwrap_or(url));
        rest = &rest[start + url_len..];
    }
    out.push_str(rest);
    out
}

/// Delay before retry number `attempt` (1-based): exponential, with jitter
/// between half and all of it so that uploads failing together spread out.
pub fn backoff(attempt: u32) -> Duration {
    let ceiling = BACKOFF_FIRST
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(BACKOFF_MAX);
    // RandomState is seeded randomly per process and per instance: enough for jitter.
    let random = std::collections::hash_map::RandomState::new().hash_one(attempt);
    let fraction = (random % 1000) as f64 / 1000.0;
    ceiling.mul_f64(0.5 + fraction / 2.0)
}

/// A request that failed for good, and whether it had been sent before.
#[derive(Debug)]
pub struct Failed {
    pub failure: Failure,
    /// An earlier attempt may have reached GCS (and, say, created the object).
    pub retried: bool,
}

/// Runs `request` under `limit`, retrying transient failures up to
/// `retries` more times with backoff.
pub async fn with_retries<T, F, Fut>(
    key: &str,
    retries: u32,
    limit: Duration,
    mut request: F,
) -> Result<T, Failed>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, HttpError>>,
{
    let mut attempt = 0;
    loop {
        let failure = match tokio::time::timeout(limit, request()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => Failure::Http(error),
            Err(_) => Failure::TimedOut(limit),
        };
        if !failure.is_transient() || attempt >= retries {
            return Err(Failed {
                failure,
                retried: attempt > 0,
            });
        }
        attempt += 1;
        tracing::debug!(key, attempt, error = %failure.describe(), "retrying a Google Cloud Storage request");
        tokio::time::sleep(backoff(attempt)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_cut_from_urls() {
        for (text, want) in [
            (
                "error sending request for url (http://127.0.0.1:4443/upload/storage/v1/b/b/o?uploadType=resumable&upload_id=SECRET)",
                "error sending request for url (http://127.0.0.1:4443/upload/storage/v1/b/b/o)",
            ),
            ("see https://x.test/a?sig=1 and http://y.test/?t=2 now", "see https://x.test/a and http://y.test/ now"),
            ("no url here", "no url here"),
        ] {
            assert_eq!(strip_query_strings(text), want);
        }
    }

    #[test]
    fn backoff_grows_with_jitter_and_a_ceiling() {
        for attempt in 1..=20 {
            let delay = backoff(attempt);
            let ceiling = BACKOFF_FIRST
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(BACKOFF_MAX);
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "attempt {attempt}: {delay:?}"
            );
        }
    }

    #[test]
    fn time_limits_grow_with_the_body() {
        let timeouts = GcsTimeouts::default();
        assert_eq!(timeouts.for_body(0), Duration::from_secs(60));
        assert_eq!(timeouts.for_body(16 << 20), Duration::from_secs(92));
    }

    #[tokio::test]
    async fn transient_failures_are_retried_then_reported() {
        let mut calls = 0;
        let result: Result<(), Failed> = with_retries("k", 2, Duration::from_millis(10), || {
            calls += 1;
            std::future::pending()
        })
        .await;
        let failed = result.unwrap_err();
        assert_eq!(calls, 3);
        assert!(failed.retried);
        let error = failed.failure.into_storage_error("k");
        assert!(matches!(error, StorageError::Transient { .. }), "{error}");
    }
}
