//! Parse the command line, set up logging and the runtime, run, exit.

/// glibc's `mallopt` parameter for the mmap threshold.
#[cfg(target_env = "gnu")]
const M_MMAP_THRESHOLD: std::ffi::c_int = -3;

// glibc only: other libcs need not have `mallopt` (nor the adaptive
// threshold it works around), and gitbak must still build there.
#[cfg(target_env = "gnu")]
extern "C" {
    fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
}

fn main() {
    tune_allocator();
    raise_open_files_limit();
    let invocation = gitbak::cli::Invocation::from_args(std::env::args_os().collect());
    let gitaly_mode = invocation.is_gitaly_mode();
    // GITBAK_LOG wins over the default (`-v`, or none in gitaly mode).
    let filter = tracing_subscriber::EnvFilter::try_from_env("GITBAK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(invocation.diagnostics()));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never into a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("gitbak: cannot start the async runtime: {error}");
            std::process::exit(gitbak::exit::FAILURE);
        }
    };
    let code = match runtime.block_on(gitbak::cli::run(invocation)) {
        Ok(status) if gitaly_mode => gitbak::exit::gitaly_code(status),
        Ok(status) => status.code(),
        Err(error) => gitbak::cli::report_error(gitaly_mode, &error),
    };
    // Do not wait for tasks still blocked on stdin.
    runtime.shutdown_background();
    std::process::exit(code);
}

/// Upload parts are 16 MiB buffers freed on other threads. glibc raises
/// its mmap threshold after the first such free and then keeps every
/// later part in per-thread heaps it never returns, so RSS drifts past
/// the `--upload-memory` budget the parts are counted against. A fixed
/// threshold keeps big buffers in their own mappings, returned to the
/// kernel when freed, so RSS follows the parts alive.
/// Other libcs' allocators do not adapt that threshold: nothing to do.
/// Each repository being backed up holds its packs open while they are
/// checked (two descriptors a pack), so a repository with hundreds of
/// packs times `--parallel` can pass the usual soft limit of 1024. The
/// soft limit is raised to the hard one, as Go's runtime does for
/// gitaly-backup. Best effort: the old limit stays on failure.
fn raise_open_files_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
}

fn tune_allocator() {
    #[cfg(target_env = "gnu")]
    // SAFETY: called before any other thread exists; only tunes the allocator.
    unsafe {
        mallopt(M_MMAP_THRESHOLD, 1 << 20);
    }
}
