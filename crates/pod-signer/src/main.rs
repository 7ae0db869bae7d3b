//! `cert-manager-pod-signer`: parse flags, set up logging, run the signer.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cmcsi_pod_signer::config::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let config = match cli.try_into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    // One thread: the signer's work per request is a few tens of microseconds of
    // verifying and parsing between API round trips, and with two workers a
    // fifth of its CPU went to handing tasks between them (B13: 0.26-0.28 s of
    // CPU for 1,000 requests against 0.31-0.36 s, peak RSS 20.3-20.7 against
    // 22.3-23.0 MiB, side by side). One core signs thousands a second.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cmcsi_pod_signer::run(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "signer stopped");
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
