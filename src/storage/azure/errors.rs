//! Azure SDK errors → `StorageError`: one line each, naming the key, the
//! container or the variables to set, with every secret and URL query
//! removed by `Redactor`.

use azure_core::error::ErrorKind;

use super::auth::ENTRA_ID_HINT;
use crate::storage::StorageError;

/// What an error message may name, and what it must not show.
#[derive(Clone)]
pub(super) struct ErrorContext {
    pub container: String,
    pub account: String,
    pub redactor: Redactor,
    pub access_hint: &'static str,
}

/// Wrappers the SDK puts around a transport error; the cause says it all.
const SDK_NOISE: &[&str] = &[
    "retry policy expired and the request will no longer be retried",
    "failed to execute `reqwest` request",
];

impl ErrorContext {
    pub(super) fn map(&self, key: &str, error: azure_core::Error) -> StorageError {
        let key = key.to_owned();
        let (status, code) = match error.kind() {
            ErrorKind::HttpResponse {
                status, error_code, ..
            } => (u16::from(*status), error_code.clone().unwrap_or_default()),
            ErrorKind::Io | ErrorKind::Connection => {
                return StorageError::Transient {
                    key,
                    message: format!("Azure Blob Storage: {}", self.describe(&error)),
                }
            }
            ErrorKind::Credential => {
                let message = format!(
                    "cannot get an Entra ID token for Azure Blob Storage ({}); {ENTRA_ID_HINT}",
                    self.describe(&error)
                );
                return StorageError::AccessDenied { key, message };
            }
            _ => {
                return StorageError::Other {
                    key,
                    message: format!("Azure Blob Storage: {}", self.describe(&error)),
                }
            }
        };
        let detail = self.provider_message(error);
        let reply = if detail.is_empty() {
            format!("HTTP {status} {code}")
        } else {
            format!("HTTP {status} {code}: {detail}")
        };
        match (status, code.as_str()) {
            (404, "ContainerNotFound") => StorageError::Other {
                key,
                message: self.container_missing(),
            },
            (404, _) => StorageError::NotFound { key },
            (409, "BlobAlreadyExists") | (412, _) => StorageError::AlreadyExists { key },
            (401 | 403, _) => StorageError::AccessDenied {
                key,
                message: format!(
                    "Azure Blob Storage refused account {:?}, container {:?} ({reply}); {}",
                    self.account, self.container, self.access_hint
                ),
            },
            (408 | 429 | 500..=599, _) => StorageError::Transient {
                key,
                message: format!("Azure Blob Storage {reply}"),
            },
            _ => StorageError::Other {
                key,
                message: format!("Azure Blob Storage {reply}"),
            },
        }
    }

    pub(super) fn container_missing(&self) -> String {
        format!(
            "Azure container {:?} does not exist in storage account {:?}; create it first (gitbak never creates containers)",
            self.container, self.account
        )
    }

    /// The first line of the service's `<Message>`; never the
    /// `AuthenticationErrorDetail`, which quotes signatures.
    fn provider_message(&self, error: azure_core::Error) -> String {
        let message = azure_storage_blob::StorageError::try_from(error)
            .ok()
            .and_then(|parsed| parsed.message)
            .unwrap_or_default();
        self.redactor
            .redact(message.lines().next().unwrap_or_default().trim())
    }

    /// The error and its causes on one line, redacted.
    pub(super) fn describe(&self, error: &(dyn std::error::Error + 'static)) -> String {
        let mut parts: Vec<String> = Vec::new();
        let mut cause = Some(error);
        while let Some(current) = cause {
            let text = current.to_string().replace('\n', " ");
            let noise = SDK_NOISE.contains(&text.as_str());
            if !text.is_empty() && !noise && !parts.iter().any(|seen| seen.contains(&text)) {
                parts.push(text);
            }
            cause = current.source();
        }
        self.redactor.redact(&parts.join(": "))
    }
}

/// Removes secrets and URL query strings (SAS tokens, signatures) from text.
#[derive(Clone, Default)]
pub(super) struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    pub(super) fn add(&mut self, secret: &str) {
        let secret = secret.trim();
        if secret.len() >= 4 {
            self.secrets.push(secret.to_owned());
            // Also as it appears percent-encoded in a URL.
            let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
            if encoded != secret {
                self.secrets.push(encoded);
            }
        }
    }

    pub(super) fn redact(&self, text: &str) -> String {
        let mut text = strip_url_queries(text);
        for secret in &self.secrets {
            text = text.replace(secret.as_str(), "***");
        }
        text
    }
}

/// `see http://host/path?sig=x)` → `see http://host/path)`.
fn strip_url_queries(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("://") {
        let (before, url) = rest.split_at(start);
        out.push_str(before);
        let end = url
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '"' | '\'' | '<' | '>'))
            .unwrap_or(url.len());
        let (url, after) = url.split_at(end);
        out.push_str(url.split(['?', '#']).next().unwrap_or_default());
        rest = after;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // allowed in tests (style.md)
mod tests {
    use super::*;

    #[test]
    fn redaction_strips_queries_and_secrets() {
        let mut redactor = Redactor::default();
        redactor.add("topsecret");
        let text = "error sending request for url (http://127.0.0.1:1/acct/c/k?sv=1&sig=x%2By): topsecret \
                    https://h/p?a=b";
        assert_eq!(
            redactor.redact(text),
            "error sending request for url (http://127.0.0.1:1/acct/c/k): *** https://h/p"
        );
    }
}
