//! The SharedKey request signer the 1.x SDK lacks: Blob service
//! string-to-sign (version 2015-02-21 and later), HMAC-SHA256 with the
//! account key. Pinned against Microsoft's Python SDK in `azure.rs`.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use azure_core::credentials::Secret;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request, Url};
use azure_core::time::{to_rfc7231, OffsetDateTime};

/// Signs each try with the account key. A per-try policy, so a retry gets a
/// fresh `x-ms-date`.
pub(super) struct SharedKeyPolicy {
    account: String,
    key: Secret,
}

impl fmt::Debug for SharedKeyPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedKeyPolicy")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

impl SharedKeyPolicy {
    pub(super) fn new(account: String, key: Secret) -> Self {
        Self { account, key }
    }

    /// Sets `x-ms-date` to `now` and `Authorization` to the signature.
    pub(super) fn sign(
        &self,
        request: &mut Request,
        now: OffsetDateTime,
    ) -> azure_core::Result<()> {
        request.insert_header("x-ms-date", to_rfc7231(&now));
        let signature = azure_core::hmac::hmac_sha256(&self.string_to_sign(request), &self.key)?;
        request.insert_header(
            "authorization",
            format!("SharedKey {}:{signature}", self.account),
        );
        Ok(())
    }

    pub(super) fn string_to_sign(&self, request: &Request) -> String {
        let header = |name: &str| -> String {
            request
                .headers()
                .iter()
                .find(|(key, _)| key.as_str().eq_ignore_ascii_case(name))
                .map(|(_, value)| value.as_str().to_owned())
                .unwrap_or_default()
        };
        // The transport often adds Content-Length only after signing, so take
        // it from the body; zero is signed as empty.
        let mut content_length = header("content-length");
        if content_length.is_empty() {
            content_length = request
                .body()
                .len()
                .map(|length| length.to_string())
                .unwrap_or_default();
        }
        if content_length == "0" {
            content_length.clear();
        }
        // Byte order equals the service's header collation for every header
        // name the SDK sends (they differ only around '-' in otherwise equal names).
        let mut ms_headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|(key, value)| {
                (
                    key.as_str().to_ascii_lowercase(),
                    value.as_str().trim().to_owned(),
                )
            })
            .filter(|(key, _)| key.starts_with("x-ms-"))
            .collect();
        ms_headers.sort();
        let mut signed = [
            request.method().as_ref().to_owned(),
            header("content-encoding"),
            header("content-language"),
            content_length,
            header("content-md5"),
            header("content-type"),
            String::new(), // Date: x-ms-date is sent instead.
            header("if-modified-since"),
            header("if-match"),
            header("if-none-match"),
            header("if-unmodified-since"),
            header("range"),
        ]
        .join("\n");
        signed.push('\n');
        for (name, value) in ms_headers {
            signed.push_str(&format!("{name}:{value}\n"));
        }
        signed.push_str(&self.canonicalized_resource(request.url()));
        signed
    }

    /// `/account/path` then `\nname:value` per query parameter, names
    /// lowercased and sorted, repeated values sorted and comma-joined.
    fn canonicalized_resource(&self, url: &Url) -> String {
        let mut resource = format!("/{}{}", self.account, url.path());
        let mut parameters: Vec<(String, Vec<String>)> = Vec::new();
        for (name, value) in url.query_pairs() {
            let name = name.to_ascii_lowercase();
            match parameters.iter_mut().find(|(known, _)| *known == name) {
                Some((_, values)) => values.push(value.into_owned()),
                None => parameters.push((name, vec![value.into_owned()])),
            }
        }
        parameters.sort();
        for (name, mut values) in parameters {
            values.sort();
            resource.push_str(&format!("\n{name}:{}", values.join(",")));
        }
        resource
    }
}

#[async_trait]
impl Policy for SharedKeyPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        self.sign(request, OffsetDateTime::now_utc())?;
        next[0].send(ctx, request, &next[1..]).await
    }
}
