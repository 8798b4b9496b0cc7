//! `cognate`: a self-hosted, wire-compatible Amazon Cognito user-pool server. This binary reads
//! the configuration and environment, and wires the crates together.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod apis;
mod backup;
mod config;
mod dev;
mod listeners;
mod logs;
mod secrets;
mod server;
mod system;
mod usage_cli;
mod wellknown;

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
    /// Apply the APIs of a configuration file to a running server (an admin call signed with
    /// COGNATE_ACCESS_KEY_ID / COGNATE_SECRET_ACCESS_KEY, or the data directory's generated key).
    /// A bad file is refused with the line at fault, and the running APIs stay.
    Apply {
        /// The server, e.g. http://127.0.0.1:9229.
        #[arg(
            long,
            env = "COGNATE_ENDPOINT",
            default_value = "http://127.0.0.1:9229"
        )]
        endpoint: String,
        /// Where the generated admin key is, when no key is in the environment
        /// [default: ./cognate-data].
        #[arg(long, env = "COGNATE_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// The YAML file whose `apis` to apply.
        file: PathBuf,
    },
    /// Copy the SQLite database (consistently, while servers use it) and the master key into a
    /// new directory; `cognate serve --data-dir DIR` starts from it. PostgreSQL databases are
    /// backed up with pg_dump.
    Backup {
        #[command(flatten)]
        place: PlaceArgs,
        /// The directory to create; it must not exist.
        to: PathBuf,
    },
    /// Manage the pools' token signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage the gateway's API keys (running servers see changes within a second).
    ApiKeys {
        #[command(flatten)]
        place: PlaceArgs,
        #[command(subcommand)]
        command: usage_cli::KeyCommand,
    },
    /// Manage the gateway's usage plans (throttles and quotas of API keys).
    UsagePlans {
        #[command(flatten)]
        place: PlaceArgs,
        #[command(subcommand)]
        command: usage_cli::PlanCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Publish new signing keys for a pool now; they sign after the lead time, and the current
    /// keys stay published until their last token has expired. Running servers see the new
    /// keys within seconds.
    Rotate {
        #[command(flatten)]
        place: PlaceArgs,
        /// The pool whose keys to rotate.
        #[arg(long)]
        pool: String,
        /// Seconds between publishing the new keys and signing with them
        /// [default: signing_keys.lead_seconds, 86400; 0 signs at once, for a key that leaked].
        #[arg(long)]
        lead_seconds: Option<u32>,
    },
}

/// Where the data is: what `serve` and the maintenance commands share.
#[derive(clap::Args)]
struct PlaceArgs {
    /// YAML configuration file (see cognate.example.yaml).
    #[arg(long, env = "COGNATE_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory: database file, master key, generated admin key [default: ./cognate-data].
    #[arg(long, env = "COGNATE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: sqlite in the data directory].
    #[arg(long, env = "COGNATE_DATABASE_URL")]
    database: Option<String>,
}

#[derive(clap::Args)]
struct ServeArgs {
    #[command(flatten)]
    place: PlaceArgs,
    /// Address to listen on [default: 127.0.0.1:9229].
    #[arg(long, env = "COGNATE_LISTEN")]
    listen: Option<String>,
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
    let writer = if format == "json" {
        logs::Logs::new()
    } else {
        logs::Logs::new().plain_text()
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    // A panic's message comes after the lines logged before it.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        logs::flush();
        report(info);
    }));
    if format == "json" {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

/// mimalloc instead of glibc's allocator: the gateway allocates per request on several threads,
/// where glibc's arenas spent about 9 % of its CPU (bench/gateway, `PERF_OUT`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let result = run(Cli::parse());
    // Lines still gathered by the log writer leave before the process ends.
    logs::flush();
    result
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = match cli.command {
        Command::Serve(args) => {
            init_logs(&args.log_format);
            let settings = settings(
                &args.place,
                Overrides {
                    listen: args.listen,
                    region: args.region,
                    password_hashing: args.password_hashing,
                    allow_development_hashing: args.allow_development_hashing,
                    sender: args.messages,
                    ..Overrides::default()
                },
            )?;
            runtime.block_on(server::serve(settings))
        }
        Command::Apply {
            endpoint,
            data_dir,
            file,
        } => {
            init_logs("text");
            let key = match (
                std::env::var("COGNATE_ACCESS_KEY_ID"),
                std::env::var("COGNATE_SECRET_ACCESS_KEY"),
            ) {
                (Ok(id), Ok(secret)) => Ok((id, secret)),
                _ => secrets::stored_admin_key(
                    &data_dir.unwrap_or_else(|| PathBuf::from(config::DEFAULT_DATA_DIR)),
                )
                .map(|k| (k.access_key_id, k.secret_access_key)),
            };
            key.and_then(|key| runtime.block_on(apis::apply_remote(&endpoint, &file, key)))
        }
        Command::Keys {
            command:
                KeysCommand::Rotate {
                    place,
                    pool,
                    lead_seconds,
                },
        } => {
            init_logs("text");
            let settings = settings(&place, Overrides::default())?;
            let lead = lead_seconds.map_or(settings.key_lead, |s| i64::from(s) * 1000);
            runtime.block_on(server::rotate_keys(&settings, &pool, lead))
        }
        Command::Backup { place, to } => {
            init_logs("text");
            let settings = settings(&place, Overrides::default())?;
            runtime.block_on(backup::back_up(&settings, &to))
        }
        Command::ApiKeys { place, command } => {
            init_logs("text");
            let settings = settings(&place, Overrides::default())?;
            runtime.block_on(usage_cli::keys(&settings, command))
        }
        Command::UsagePlans { place, command } => {
            init_logs("text");
            let settings = settings(&place, Overrides::default())?;
            runtime.block_on(usage_cli::plans(&settings, command))
        }
    };
    if let Err(e) = &result {
        tracing::error!("{e:#}");
    }
    result
}

/// The file, then the environment, then the flags.
fn settings(place: &PlaceArgs, flags: Overrides) -> anyhow::Result<Settings> {
    let file = match &place.config {
        Some(path) => FileConfig::load(path)?,
        None => {
            // Without --config, the APIs of {data_dir}/cognate.yaml (the file SIGHUP re-reads).
            let dir = place
                .data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(config::DEFAULT_DATA_DIR));
            let path = dir.join("cognate.yaml");
            let apis = if path.exists() {
                FileConfig::load(&path)?.apis
            } else {
                None
            };
            FileConfig {
                apis,
                ..FileConfig::default()
            }
        }
    };
    Settings::resolve(
        file,
        Overrides {
            data_dir: place.data_dir.clone(),
            database: place.database.clone(),
            issuer_base: std::env::var("COGNATE_ISSUER_BASE").ok(),
            master_key: std::env::var("COGNATE_MASTER_KEY").ok(),
            access_key_id: std::env::var("COGNATE_ACCESS_KEY_ID").ok(),
            secret_access_key: std::env::var("COGNATE_SECRET_ACCESS_KEY").ok(),
            config_path: place.config.clone(),
            ..flags
        },
    )
}
