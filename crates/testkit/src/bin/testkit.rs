//! Standalone fake Kubernetes API with the test issuer, for demos.
//!
//! `testkit serve --kubeconfig-out PATH [--port N] [--issuer NAME=SCRIPT]...`
//! prints the URL and serves until SIGTERM or SIGINT.

use clap::{Parser, Subcommand};
use cmcsi_testkit::{DEFAULT_TOKEN, FakeApi, Script};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "testkit",
    about = "Fake Kubernetes API for cert-manager CertificateRequests"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the fake API until SIGTERM/SIGINT.
    Serve {
        /// Write a kubeconfig for the server (default token) here.
        #[arg(long)]
        kubeconfig_out: PathBuf,
        /// Port on 127.0.0.1 (0 = any free port).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Script per issuer name, NAME=SCRIPT; SCRIPT is one of sign, deny, deny:REASON:MESSAGE, fail, fail:MESSAGE, invalid, never, approve-only, delay:DURATION.
        #[arg(long = "issuer", value_parser = parse_issuer)]
        issuers: Vec<(String, Script)>,
        /// Script for issuer names not listed with --issuer (default: leave pending).
        #[arg(long, value_parser = Script::parse)]
        default_script: Option<Script>,
        /// Extra bearer tokens: TOKEN=USERNAME.
        #[arg(long = "token", value_parser = parse_token)]
        tokens: Vec<(String, String)>,
        /// Also write the test CA certificate (PEM) here.
        #[arg(long)]
        ca_out: Option<PathBuf>,
    },
}

fn parse_issuer(s: &str) -> Result<(String, Script), String> {
    let (name, script) = s.split_once('=').ok_or("expected NAME=SCRIPT")?;
    Ok((name.to_string(), Script::parse(script)?))
}

fn parse_token(s: &str) -> Result<(String, String), String> {
    let (t, u) = s.split_once('=').ok_or("expected TOKEN=USERNAME")?;
    Ok((t.to_string(), u.to_string()))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let Command::Serve {
        kubeconfig_out,
        port,
        issuers,
        default_script,
        tokens,
        ca_out,
    } = Cli::parse().command;
    let mut builder = FakeApi::builder().port(port);
    for (name, script) in issuers {
        builder = builder.issuer(name, script);
    }
    if let Some(s) = default_script {
        builder = builder.default_script(s);
    }
    let api = builder.start().await?;
    for (t, u) in tokens {
        api.add_token(t, u);
    }
    api.write_kubeconfig(&kubeconfig_out, DEFAULT_TOKEN)?;
    if let Some(p) = ca_out {
        std::fs::write(p, api.ca_pem())?;
    }
    println!("{}", api.url());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    api.shutdown().await;
    Ok(())
}
