//! The `outpost` binary: parse the command line, start tracing, call into the library, map
//! errors to exit codes (0 success, 1 invalid input or config, 2 runtime failure).

use clap::{Parser, Subcommand};
use outpost::cli;
use std::path::PathBuf;
use std::process::ExitCode;

/// Outpost: edge gateway for field devices.
#[derive(Parser)]
#[command(name = "outpost", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway daemon.
    Run {
        /// Config file.
        #[arg(short, long, default_value = outpost::config::DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Validate the config and every profile it uses.
    Check {
        #[arg(short, long, default_value = outpost::config::DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Show the gateway's state from Redis: uplink, backlog, devices, drops (works while the
    /// daemon is down).
    Status {
        #[arg(short, long, default_value = outpost::config::DEFAULT_CONFIG)]
        config: PathBuf,
        /// Machine-readable JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Queue a message for a device (SPEC §8); works without the hub. The running daemon
    /// delivers it; `outpost status` lists what is pending.
    Send {
        #[arg(short, long, default_value = outpost::config::DEFAULT_CONFIG)]
        config: PathBuf,
        /// Device id, or "*" for every device that takes text.
        #[arg(long)]
        to: String,
        /// Drop the message (receipt "expired") if not sent within this long.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: std::time::Duration,
        /// Ask an OwnTracks phone to report its position now, instead of sending text.
        #[arg(long)]
        locate: bool,
        /// The text.
        #[arg(required_unless_present = "locate")]
        text: Option<String>,
    },
    /// Print a commented gateway.toml template with every key and its default.
    PrintConfig,
    /// Decode a device capture with a profile and print events as JSON lines.
    Decode {
        /// Profile name or path.
        #[arg(short, long)]
        profile: String,
        /// Config whose profiles folder is searched for a profile name.
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Capture file (default: standard input).
        file: Option<PathBuf>,
    },
    /// Self-contained demonstration: private Redis and brokers, simulated devices, a hub,
    /// the uplink cut for a while mid-run.
    Demo {
        /// Approximate length of the run in seconds (the final drain comes on top).
        #[arg(long, default_value_t = 30)]
        seconds: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::init_tracing();
    let result = match cli.command {
        Command::Run { config } => cli::run(&config),
        Command::Check { config } => cli::check(&config),
        Command::Status { config, json } => cli::status(&config, json),
        Command::Send {
            config,
            to,
            ttl,
            locate,
            text,
        } => cli::send(
            &config,
            cli::SendArgs {
                to,
                ttl,
                text: text.unwrap_or_default(),
                locate,
            },
        ),
        Command::PrintConfig => cli::print_config(),
        Command::Demo { seconds } => outpost::demo::demo(seconds),
        Command::Decode {
            profile,
            config,
            file,
        } => cli::decode(&profile, config.as_deref(), file.as_deref()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("outpost: {e:#}");
            ExitCode::from(cli::exit_code(&e))
        }
    }
}
