//! The `outpost-hub` binary: parse the command line, start tracing, call into the library, map
//! errors to exit codes (0 success, 1 invalid input or config, 2 runtime failure).

use clap::{Parser, Subcommand};
use outpost_hub::config::{Settings, DEFAULT_CONFIG};
use std::path::PathBuf;
use std::process::ExitCode;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// outpost-hub: the regional hub for Outpost gateways.
#[derive(Parser)]
#[command(name = "outpost-hub", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a receiver (and the HTTP API when configured).
    Run {
        #[arg(short, long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Validate the config: every problem as file:line:col.
    Check {
        #[arg(short, long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Copy every stored event the target region lacks (idempotent, resumable by re-running).
    /// Endpoints: `URL[,URL…][#prefix]` (several URLs: a Redis Cluster; prefix default `hub`).
    Sync {
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        /// The target's retention (as in its hub.toml).
        #[arg(long, default_value = "30d", value_parser = humantime::parse_duration)]
        retention: std::time::Duration,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    outpost::cli::init_tracing();
    match cli.command {
        Command::Check { config } => match load(&config) {
            Ok(s) => {
                println!(
                    "{}: ok (hub {}, region {})",
                    config.display(),
                    s.id,
                    s.region
                );
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Sync {
            from,
            to,
            retention,
        } => {
            let (from, to) = match (
                outpost_hub::sync::endpoint(&from, retention),
                outpost_hub::sync::endpoint(&to, retention),
            ) {
                (Ok(f), Ok(t)) => (f, t),
                (Err(e), _) | (_, Err(e)) => {
                    eprintln!("outpost-hub sync: {e}");
                    return ExitCode::from(1);
                }
            };
            block_on("sync", async {
                let src = outpost_hub::store::Store::connect(&from).await?;
                let dst = outpost_hub::store::Store::connect(&to).await?;
                let c = outpost_hub::sync::sync(&src, &dst, &mut std::io::stderr()).await?;
                println!(
                    "synced: {} gateways, {} events seen, {} copied",
                    c.gateways, c.seen, c.copied
                );
                Ok(())
            })
        }
        Command::Run { config } => match load(&config) {
            Ok(settings) => block_on("run", outpost_hub::run(settings)),
            Err(code) => code,
        },
    }
}

/// Loads `hub.toml`; every problem printed (`file:line:col: …`) and exit code 1 when invalid.
fn load(config: &std::path::Path) -> Result<Settings, ExitCode> {
    Settings::load(config).map_err(|p| {
        for l in p.lines() {
            eprintln!("{l}");
        }
        ExitCode::from(1)
    })
}

/// Runs `f` on a tokio runtime; a failure is printed and exits 2 (runtime failure).
fn block_on(what: &str, f: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let result = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(f));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("outpost-hub {what}: {e:#}");
            ExitCode::from(2)
        }
    }
}
