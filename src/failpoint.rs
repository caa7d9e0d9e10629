//! Failpoints: named places where a test can make gitbak crash, receive a
//! signal, pause or panic, to prove that every window leaves repositories
//! and storage old or new and nothing behind that a rerun does not clean.
//!
//! Compiled in only with the `failpoints` cargo feature (the test command
//! enables it); without it `hit` is an empty inline function. Integration
//! tests run the real binary, so the points are chosen at run time through
//! `GITBAK_FAILPOINTS=name=action[+action],…` where an action is `kill`
//! (SIGKILL to gitbak itself, as kill -9 would), `term` (SIGTERM to itself,
//! then carry on), `panic`, or `sleep<ms>` (blocks the calling thread).

/// Whether a test switched on the behaviour `name` (`name=on`), such as
/// pretending the kernel lacks `RENAME_EXCHANGE`. Always false without the
/// feature.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn is_on(_name: &'static str) -> bool {
    false
}

/// Whether a test switched on the behaviour `name` (`name=on`).
#[cfg(feature = "failpoints")]
pub fn is_on(name: &'static str) -> bool {
    enabled::actions(name).iter().any(|action| action == "on")
}

/// Triggers the actions configured for `name`, if any.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &'static str) {}

/// Triggers the actions configured for `name`, if any.
#[cfg(feature = "failpoints")]
pub fn hit(name: &'static str) {
    for action in enabled::actions(name) {
        match action.as_str() {
            "kill" => {
                let _ = rustix::process::kill_process(
                    rustix::process::getpid(),
                    rustix::process::Signal::KILL,
                );
                // SIGKILL is not delivered synchronously on every kernel path.
                std::thread::sleep(std::time::Duration::from_secs(60));
            }
            "term" => {
                let _ = rustix::process::kill_process(
                    rustix::process::getpid(),
                    rustix::process::Signal::TERM,
                );
            }
            "panic" => panic!("failpoint {name}"),
            "on" => {}
            other => match other.strip_prefix("sleep").map(str::parse::<u64>) {
                Some(Ok(millis)) => std::thread::sleep(std::time::Duration::from_millis(millis)),
                _ => panic!("failpoint {name}: unknown action {other:?}"),
            },
        }
    }
}

#[cfg(feature = "failpoints")]
mod enabled {
    use std::collections::HashMap;
    use std::sync::OnceLock;

    fn table() -> &'static HashMap<String, Vec<String>> {
        static TABLE: OnceLock<HashMap<String, Vec<String>>> = OnceLock::new();
        TABLE.get_or_init(|| {
            let text = std::env::var("GITBAK_FAILPOINTS").unwrap_or_default();
            parse(&text)
        })
    }

    pub(super) fn parse(text: &str) -> HashMap<String, Vec<String>> {
        text.split(',')
            .filter_map(|item| item.split_once('='))
            .map(|(name, actions)| {
                let actions = actions.split('+').map(str::to_owned).collect();
                (name.trim().to_owned(), actions)
            })
            .collect()
    }

    pub(super) fn actions(name: &str) -> &'static [String] {
        table().get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn parses_names_and_actions() {
            let table = super::parse("a=kill,b=term+sleep200");
            assert_eq!(table["a"], ["kill"]);
            assert_eq!(table["b"], ["term", "sleep200"]);
            assert!(super::parse("").is_empty());
        }
    }
}
