//! The clock commands read: the system's, or `GITBAK_NOW`, a test-only
//! override that stamps backups with another time, so a benchmark or test
//! can lay down a month of daily backups in minutes (benches/prune.sh).
//! It moves `create`'s default backup id and `created_at`, and `prune`'s
//! default `--now`; nothing else.

use crate::layout::time::parse_point_in_time;

/// The variable: Unix seconds, RFC 3339, or `YYYYMMDDhhmmss` (UTC).
pub const TEST_CLOCK: &str = "GITBAK_NOW";

/// Seconds since the Unix epoch: `GITBAK_NOW` when set and valid (an
/// invalid one is refused by `Context::open` before any work), else the
/// system clock.
pub fn unix_now() -> i64 {
    match test_now() {
        Some(Ok(seconds)) => seconds,
        _ => system_now(),
    }
}

/// `GITBAK_NOW` when set: its time, or why it is not one.
pub fn test_now() -> Option<Result<i64, String>> {
    let text = std::env::var_os(TEST_CLOCK)?;
    let text = text.to_string_lossy();
    if let Ok(seconds) = text.parse::<i64>() {
        return Some(Ok(seconds));
    }
    Some(
        parse_point_in_time(&text)
            .map(|time| time.unix_seconds())
            .map_err(|error| format!("{TEST_CLOCK} (a test-only clock override): {error}")),
    )
}

fn system_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or(0)
}
