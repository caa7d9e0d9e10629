//! This host's processes as the kernel lists them in `/proc`: which
//! process this is, exactly enough that a later run can tell whether it
//! still runs or its pid now belongs to another process.

use std::io;

/// A process, identified beyond its pid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessIdentity {
    pub pid: u32,
    /// `/proc/sys/kernel/random/boot_id`: ticks count from this boot.
    pub boot_id: String,
    /// Field 22 of `/proc/<pid>/stat`: clock ticks from boot to its start.
    pub start_ticks: u64,
    /// Its start as Unix seconds (boot time + ticks), for people.
    pub started_at: i64,
}

impl ProcessIdentity {
    pub fn current() -> io::Result<Self> {
        let pid = std::process::id();
        let start_ticks =
            start_ticks(pid)?.ok_or_else(|| io::Error::other("/proc/self/stat is missing"))?;
        let per_second = rustix::param::clock_ticks_per_second().max(1);
        Ok(Self {
            pid,
            boot_id: boot_id()?,
            start_ticks,
            started_at: boot_time()? + i64::try_from(start_ticks / per_second).unwrap_or(0),
        })
    }
}

/// The boot id of the running kernel.
pub fn boot_id() -> io::Result<String> {
    Ok(std::fs::read_to_string("/proc/sys/kernel/random/boot_id")?
        .trim()
        .to_owned())
}

/// The start ticks of the process `pid`; `None` when none runs.
pub fn start_ticks(pid: u32) -> io::Result<Option<u64>> {
    let stat = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    Ok(Some(parse_start_ticks(&stat).ok_or_else(|| {
        io::Error::other(format!("/proc/{pid}/stat has no start time"))
    })?))
}

/// Field 22 of a stat line. The command name (field 2) is in parentheses
/// and may hold spaces and parentheses itself: fields are counted after
/// its last `)`.
fn parse_start_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    // `rest` starts with field 3 (the state).
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// The boot time, Unix seconds (`btime` of `/proc/stat`).
fn boot_time() -> io::Result<i64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    stat.lines()
        .find_map(|line| line.strip_prefix("btime ")?.trim().parse().ok())
        .ok_or_else(|| io::Error::other("/proc/stat has no btime"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = ProcessIdentity::current().unwrap();
        assert_eq!(me.pid, std::process::id());
        assert_eq!(start_ticks(me.pid).unwrap(), Some(me.start_ticks));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!(me.started_at <= now + 1 && me.started_at > now - 86_400 * 365);
        // Above pid_max: no such process.
        assert_eq!(start_ticks(4_194_304_999).unwrap(), None);
    }

    #[test]
    fn command_names_with_spaces_and_parentheses() {
        let stat = "42 (a b) c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                    987654 1000 10 18446744073709551615";
        assert_eq!(parse_start_ticks(stat), Some(987_654));
        assert_eq!(parse_start_ticks("garbage"), None);
    }
}
