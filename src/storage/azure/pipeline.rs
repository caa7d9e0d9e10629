//! The HTTP pipeline every Azure request goes through: our transport with
//! explicit timeouts, the SDK's exponential retry, and per-try policies that
//! count tries, enforce a deadline and sign.
//!
//! Knows nothing of keys or objects; `azure.rs` decides what to send.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::error::ErrorKind;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{
    ClientOptions, Context, ExponentialRetryOptions, Request, RetryOptions, Transport,
};

use super::AzureTimeouts;

/// First backoff; each retry doubles it (plus up to 255 ms of SDK jitter).
const INITIAL_BACKOFF_MS: i64 = 400;
const MAX_BACKOFF_SECONDS: i64 = 30;

pub(super) fn client_options(
    timeouts: AzureTimeouts,
    retries: u32,
    signer: Option<Arc<dyn Policy>>,
) -> Result<ClientOptions, String> {
    // Our own client, for an explicit connect timeout; the SDK's has fixed
    // ones. No decompression: partitioned downloads need raw ranges.
    let http = reqwest::Client::builder()
        .connect_timeout(timeouts.connect)
        .redirect(reqwest::redirect::Policy::none())
        .no_gzip()
        .no_deflate()
        .build()
        .map_err(|error| format!("cannot build the HTTP client: {error}"))?;
    let retry = ExponentialRetryOptions {
        initial_delay: azure_core::time::Duration::milliseconds(INITIAL_BACKOFF_MS),
        max_retries: retries,
        // The retry count is the limit, not the clock: a slow part must not
        // lose its retries to an elapsed-time cap.
        max_total_elapsed: azure_core::time::Duration::hours(24),
        max_delay: azure_core::time::Duration::seconds(MAX_BACKOFF_SECONDS),
    };
    let mut per_try: Vec<Arc<dyn Policy>> =
        vec![Arc::new(CountTries), Arc::new(Deadline(timeouts))];
    per_try.extend(signer);
    Ok(ClientOptions {
        per_try_policies: per_try,
        retry: RetryOptions::exponential(retry),
        transport: Some(Transport::new(Arc::new(http))),
        ..Default::default()
    })
}

/// Put into a call's context to learn how many tries it took; a create-only
/// conflict on a retry may be our own earlier try succeeding.
#[derive(Debug, Default, Clone)]
pub(super) struct Tries(Arc<AtomicU32>);

impl Tries {
    pub(super) fn count(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
struct CountTries;

#[async_trait]
impl Policy for CountTries {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        if let Some(tries) = ctx.value::<Tries>() {
            tries.0.fetch_add(1, Ordering::Relaxed);
        }
        next[0].send(ctx, request, &next[1..]).await
    }
}

/// Fails a try whose response headers do not arrive in time, so a hung
/// server becomes an I/O error the retry policy retries. The allowance grows
/// with the body: sending it is part of the wait.
struct Deadline(AzureTimeouts);

impl fmt::Debug for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Deadline").field(&self.0).finish()
    }
}

impl Deadline {
    fn for_body(&self, length: u64) -> Duration {
        let mebibytes = u32::try_from(length.div_ceil(1 << 20)).unwrap_or(u32::MAX);
        self.0
            .response
            .saturating_add(self.0.per_mebibyte.saturating_mul(mebibytes))
    }
}

#[async_trait]
impl Policy for Deadline {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let limit = self.for_body(request.body().len().unwrap_or(0));
        match tokio::time::timeout(limit, next[0].send(ctx, request, &next[1..])).await {
            Ok(result) => result,
            Err(_) => Err(azure_core::Error::with_message(
                ErrorKind::Io,
                format!("no response within {} s", limit.as_secs_f32()),
            )),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // allowed in tests (style.md)
mod tests {
    use super::*;

    #[test]
    fn deadline_grows_with_the_body() {
        let deadline = Deadline(AzureTimeouts {
            connect: Duration::from_secs(1),
            response: Duration::from_secs(10),
            per_mebibyte: Duration::from_secs(2),
        });
        assert_eq!(deadline.for_body(0), Duration::from_secs(10));
        assert_eq!(deadline.for_body(1), Duration::from_secs(12));
        assert_eq!(deadline.for_body(16 << 20), Duration::from_secs(42));
    }
}
