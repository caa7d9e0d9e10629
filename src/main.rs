//! Parse the command line, set up logging and the runtime, run, exit.

use clap::Parser;

fn main() {
    let cli = gitbak::cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("GITBAK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
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
