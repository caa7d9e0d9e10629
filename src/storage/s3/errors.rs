//! S3 errors as gitbak's `StorageError`, one line each, without secrets.

use super::*;

const CREDENTIALS_HINT: &str =
    "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, the instance role) and the bucket policy";

/// Makes provider text fit one log line and drops the query string of
/// every URL in it: presigned URLs carry signatures there.
fn clean(text: &str) -> String {
    text.split_whitespace()
        .map(|word| match (word.find("://"), word.find('?')) {
            (Some(scheme), Some(query)) if query > scheme => &word[..query],
            _ => word,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// An error and its sources on one line, without the SDK's Debug dump.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some layers repeat their source's text in their own.
        if !text.ends_with(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// Maps an SDK error to what the rest of gitbak acts on; the key names
/// the object (or the listed prefix).
pub(super) fn storage_error<E>(
    bucket: &str,
    key: &str,
    error: SdkError<E, HttpResponse>,
) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let key = key.to_owned();
    let SdkError::ServiceError(service) = &error else {
        let message = clean(&format!("S3 request failed: {}", error_chain(&error)));
        return match error {
            // Loading credentials fails before any request is sent.
            _ if message.contains("no credentials") || message.contains("credential provider") => {
                StorageError::AccessDenied {
                    key,
                    message: format!("{message}; {CREDENTIALS_HINT}"),
                }
            }
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => StorageError::Transient { key, message },
            _ => StorageError::Other { key, message },
        };
    };
    let status = service.raw().status().as_u16();
    let code = service.err().code().unwrap_or("");
    let detail = clean(service.err().message().unwrap_or(""));
    match (status, code) {
        (_, "NoSuchBucket") => StorageError::Other {
            key,
            message: format!("S3 bucket {bucket:?} does not exist; gitbak never creates buckets"),
        },
        (404, _) | (_, "NoSuchKey") => StorageError::NotFound { key },
        (412, _) => StorageError::AlreadyExists { key },
        (401 | 403, _) => StorageError::AccessDenied {
            key,
            message: format!("S3 refused the request ({code} {detail}); {CREDENTIALS_HINT}"),
        },
        (429 | 500..=599, _) | (_, "SlowDown" | "RequestTimeout" | "InternalError") => {
            StorageError::Transient {
                key,
                message: format!("S3 {code} (HTTP {status}): {detail}"),
            }
        }
        _ => StorageError::Other {
            key,
            message: format!("S3 {code} (HTTP {status}): {detail}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_text_is_one_line_without_query_strings() {
        assert_eq!(
            clean("denied for https://b.s3.amazonaws.com/k?X-Amz-Signature=abc\n  at   line"),
            "denied for https://b.s3.amazonaws.com/k at line"
        );
    }
}
