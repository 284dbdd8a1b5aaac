//! The `pingtower` binary: the command line, settings, and the wiring of roles.

mod check_cmd;
mod config;
mod config_cmd;
mod serve;

/// mimalloc instead of glibc's malloc: a check allocates many small, short-lived objects
/// (request, response, result details) across threads; replacing glibc's malloc cut the CPU of
/// a check by 40 % (measured with `pingtower-bench run`: 216 -> 129 CPU-ms per 1,000 checks at
/// 333 checks/s), for a little more resident memory.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Self-hosted monitoring: checks, incidents, notifications and statistics in one binary.
#[derive(Debug, Parser)]
#[command(name = "pingtower", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run PingTower: every role in one process on the embedded default, or the roles named.
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate(ServeArgs),
    /// Run one check now and print its outcome and timings (exit 0 UP, 1 DOWN or DEGRADED, 2 bad usage).
    Check(Box<check_cmd::CheckArgs>),
    /// Make a running server's monitors, channels, rules, maintenance windows and status pages match a YAML file; prints the plan.
    Apply(config_cmd::ApplyArgs),
    /// Print the server's configuration as YAML that `apply` accepts.
    Export(config_cmd::ExportArgs),
}

/// The flags of `serve` (and `migrate`). Each overrides its PINGTOWER_* variable and the config file.
#[derive(Debug, Args)]
struct ServeArgs {
    /// Address of the HTTP server [env: PINGTOWER_LISTEN] [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Where the embedded database and generated secrets live [env: PINGTOWER_DATA_DIR] [default: ./pingtower-data]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<String>,
    /// sqlite://PATH or postgres://… [env: PINGTOWER_DATABASE_URL] [default: SQLite file in the data dir]
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// amqp://… for RabbitMQ [env: PINGTOWER_BROKER_URL] [default: in-process]
    #[arg(long, value_name = "URL")]
    broker: Option<String>,
    /// Comma-separated roles: api, scheduler, worker, notifier, stats, or all [env: PINGTOWER_ROLES] [default: all]
    #[arg(long, value_name = "ROLES")]
    roles: Option<String>,
    /// The region this process's checks report from [env: PINGTOWER_REGION] [default: default]
    #[arg(long, value_name = "NAME")]
    region: Option<String>,
    /// A TOML or YAML file of settings [env: PINGTOWER_CONFIG]
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

impl ServeArgs {
    fn flags(&self) -> config::Flags {
        config::Flags {
            listen: self.listen.clone(),
            data_dir: self.data_dir.clone(),
            database: self.database.clone(),
            broker: self.broker.clone(),
            roles: self.roles.clone(),
            region: self.region.clone(),
            config: self.config.clone(),
        }
    }
}

fn main() -> ExitCode {
    // Every TLS client of the binary uses ring (aws-lc is kept out of the tree).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let args = match cli.command {
        Command::Serve(ref a) | Command::Migrate(ref a) => a,
        Command::Check(args) => return run_check(*args),
        Command::Apply(args) => return run_client(config_cmd::apply(args)),
        Command::Export(args) => return run_client(config_cmd::export(args)),
    };
    let env = std::env::vars().collect();
    let settings = match config::resolve(&args.flags(), &env) {
        Ok(s) => s,
        Err(errors) => {
            eprint!("pingtower: {errors}");
            return ExitCode::from(2);
        }
    };
    serve::init_logging(&settings);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pingtower: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let outcome: anyhow::Result<()> = runtime.block_on(async {
        match cli.command {
            Command::Serve(_) => serve::serve(settings).await?,
            Command::Migrate(_) => migrate(settings).await?,
            Command::Check(_) | Command::Apply(_) | Command::Export(_) => {}
        }
        Ok(())
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "exiting");
            eprintln!("pingtower: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// `pingtower check`: needs no settings and no database.
fn run_check(args: check_cmd::CheckArgs) -> ExitCode {
    let filter = std::env::var("PINGTOWER_LOG").unwrap_or_else(|_| "warn".to_owned());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(filter)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(check_cmd::run(args)),
        Err(e) => {
            eprintln!("pingtower: cannot start the runtime: {e}");
            ExitCode::from(1)
        }
    }
}

/// `apply` and `export`: HTTP clients of a running server.
fn run_client(work: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(work),
        Err(e) => {
            eprintln!("pingtower: cannot start the runtime: {e}");
            ExitCode::from(1)
        }
    }
}

/// `pingtower migrate`: brings the schema up to date and exits.
async fn migrate(settings: config::Settings) -> Result<(), serve::ServeError> {
    if pingtower_store::scheme_of(&settings.database_url()).ok()
        == Some(pingtower_store::Backend::Sqlite)
    {
        std::fs::create_dir_all(&settings.data_dir).map_err(|e| serve::ServeError::DataDir {
            path: settings.data_dir.clone(),
            message: format!("cannot create it: {e}"),
        })?;
    }
    let store = serve::open_store(&settings).await?;
    store.close().await;
    println!(
        "migrations applied to {}",
        pingtower_store::redact_url(&settings.database_url())
    );
    Ok(())
}
