//! `cert-manager-csi-driver`: parse flags, set up logging, run the driver;
//! or, as `cert-manager-csi-driver status`, print the node's volumes.

use clap::Parser;

fn main() -> std::process::ExitCode {
    // Before anything holds a key: no core dumps, not dumpable.
    let hardening = cmcsi_driver::hardening::apply();
    if std::env::args_os().nth(1).is_some_and(|a| a == "status") {
        return cmcsi_driver::status::main(std::env::args_os().skip(1));
    }
    let cli = cmcsi_driver::config::Cli::parse();
    let config = match cli.try_into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    cmcsi_driver::logging::init(config.log_level, config.log_format);
    cmcsi_driver::hardening::log(&hardening);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cmcsi_driver::run(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "driver stopped");
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
