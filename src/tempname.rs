//! Names of gitbak's temporary files and directories, and telling whether
//! one was left behind by a dead gitbak on this host.
//!
//! Every temporary name ends in `~HOST~PID-COUNTER`: unique within a run,
//! across concurrent runs and across the hosts that share a backup
//! location. A rerun removes only leftovers of this host whose process no
//! longer runs; other hosts' leftovers wait for prune's grace period.
//! Pure naming plus one liveness check; removes nothing itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// This host's name as it appears in temporary names: only characters a
/// host name may have, so `~` always separates the parts.
pub fn host() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        let mut buffer = [0u8; 256];
        // SAFETY: the buffer is valid for its length; gethostname writes at
        // most that many bytes.
        let result = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
        let raw = if result == 0 {
            let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
            String::from_utf8_lossy(&buffer[..end]).into_owned()
        } else {
            String::new()
        };
        sanitize(&raw)
    })
}

fn sanitize(raw: &str) -> String {
    let host: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if host.is_empty() {
        "localhost".into()
    } else {
        host
    }
}

/// `name` with a fresh `~HOST~PID-COUNTER` tag.
pub fn unique(name: &str) -> String {
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{name}~{}~{}-{counter}", host(), std::process::id())
}

/// Who left a temporary name: the parts of its tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag<'a> {
    /// What came before the tag (the file or repository name).
    pub name: &'a str,
    pub host: &'a str,
    pub pid: u32,
}

/// Splits `text` (a temporary name without its caller's own prefix and
/// suffix) into its name and tag; `None` when it carries no tag.
pub fn parse(text: &str) -> Option<Tag<'_>> {
    let mut parts = text.rsplitn(3, '~');
    let (pid_counter, host, name) = (parts.next()?, parts.next()?, parts.next()?);
    let (pid, counter) = pid_counter.split_once('-')?;
    counter.parse::<u64>().ok()?;
    Some(Tag {
        name,
        host,
        pid: pid.parse().ok()?,
    })
}

impl Tag<'_> {
    /// Left by a gitbak of this host that no longer runs: safe to remove.
    pub fn is_stale_here(&self) -> bool {
        self.host == host() && self.pid != std::process::id() && !process_runs(self.pid)
    }
}

fn process_runs(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    // EPERM: it runs, as another user.
    !matches!(
        rustix::process::test_kill_process(pid),
        Err(rustix::io::Errno::SRCH)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_liveness() {
        let name = unique("+latest.toml");
        let tag = parse(&name).unwrap();
        assert_eq!(tag.name, "+latest.toml");
        assert_eq!(tag.host, host());
        assert_eq!(tag.pid, std::process::id());
        assert!(!tag.is_stale_here(), "our own names are never stale");
        let tricky = parse("a~b.git~my-host.example~4294967-7").unwrap();
        assert_eq!((tricky.name, tricky.host), ("a~b.git", "my-host.example"));
        assert!(parse("plain.git").is_none());
        assert!(parse("x~h~12").is_none());
        // A pid that cannot run (above pid_max) is stale here, not elsewhere.
        let dead = format!("r.git~{}~4194304999-0", host());
        assert!(parse(&dead).unwrap().is_stale_here());
        assert!(!parse("r.git~other-host~4194304999-0")
            .unwrap()
            .is_stale_here());
        assert_eq!(sanitize("a b~c"), "a_b_c");
    }
}
