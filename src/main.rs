//! Parse the command line, set up logging and the runtime, run, exit.

use clap::Parser;

/// glibc's `mallopt` parameter for the mmap threshold.
const M_MMAP_THRESHOLD: std::ffi::c_int = -3;

extern "C" {
    fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
}

fn main() {
    // Upload parts are 16 MiB buffers freed on other threads. glibc raises
    // its mmap threshold after the first such free and then keeps every
    // later part in per-thread heaps it never returns, so RSS drifts past
    // the (concurrency + 1) × part size bound. A fixed threshold keeps big
    // buffers in their own mappings, returned to the kernel when freed.
    // SAFETY: called before any other thread exists; only tunes the allocator.
    unsafe {
        mallopt(M_MMAP_THRESHOLD, 1 << 20);
    }
    let cli = gitbak::cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("GITBAK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
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
    let code = match runtime.block_on(gitbak::cli::run(cli)) {
        Ok(status) => status.code(),
        Err(error) => {
            eprintln!("gitbak: {error:#}");
            gitbak::exit::code_for_error(&error)
        }
    };
    // Do not wait for tasks still blocked on stdin.
    runtime.shutdown_background();
    std::process::exit(code);
}
