//! `cognate`: a self-hosted, wire-compatible Amazon Cognito user-pool server. This binary reads
//! the configuration and environment, and wires the crates together.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod config;
mod dev;
mod secrets;
mod server;
mod system;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{FileConfig, Overrides, Settings};

#[derive(Parser)]
#[command(
    name = "cognate",
    version,
    about = "A self-hosted Amazon Cognito user-pool server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// YAML configuration file (see cognate.example.yaml).
    #[arg(long, env = "COGNATE_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:9229].
    #[arg(long, env = "COGNATE_LISTEN")]
    listen: Option<String>,
    /// Data directory: database file, master key, generated admin key [default: ./cognate-data].
    #[arg(long, env = "COGNATE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: sqlite in the data directory].
    #[arg(long, env = "COGNATE_DATABASE_URL")]
    database: Option<String>,
    /// Region of new pools when a request's signature names none [default: us-east-1].
    #[arg(long, env = "COGNATE_REGION")]
    region: Option<String>,
    /// Password hashing profile: default (argon2id 19 MiB, t=2) or development (cheap).
    #[arg(long, env = "COGNATE_PASSWORD_HASHING")]
    password_hashing: Option<String>,
    /// Allow the development hashing profile on a non-loopback address.
    #[arg(long, env = "COGNATE_ALLOW_DEVELOPMENT_HASHING")]
    allow_development_hashing: bool,
    /// Message delivery: outbox (default on loopback), log, or smtp (configured in the file).
    #[arg(long, env = "COGNATE_MESSAGES")]
    messages: Option<String>,
    /// Log format: text or json.
    #[arg(long, env = "COGNATE_LOG_FORMAT", default_value = "text")]
    log_format: String,
}

fn init_logs(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("COGNATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    if format == "json" {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let Command::Serve(args) = cli.command;
    init_logs(&args.log_format);
    let file = match &args.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let overrides = Overrides {
        listen: args.listen,
        data_dir: args.data_dir,
        database: args.database,
        region: args.region,
        issuer_base: std::env::var("COGNATE_ISSUER_BASE").ok(),
        master_key: std::env::var("COGNATE_MASTER_KEY").ok(),
        access_key_id: std::env::var("COGNATE_ACCESS_KEY_ID").ok(),
        secret_access_key: std::env::var("COGNATE_SECRET_ACCESS_KEY").ok(),
        password_hashing: args.password_hashing,
        allow_development_hashing: args.allow_development_hashing,
        sender: args.messages,
    };
    let settings = Settings::resolve(file, overrides)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(server::serve(settings));
    if let Err(e) = &result {
        tracing::error!("{e:#}");
    }
    result
}
