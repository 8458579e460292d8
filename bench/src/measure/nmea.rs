//! Measure 5, NMEA decode: runs the existing `cargo bench -p outpost --bench nmea` (decoder vs
//! bare `nmea::parse_str`) and hands back what it printed.

use std::process::{Command, Stdio};

use anyhow::{bail, Context};

pub fn run() -> anyhow::Result<String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["bench", "-p", "outpost", "--bench", "nmea"])
        .arg("--manifest-path")
        .arg(outpost_system_tests::workspace_root().join("Cargo.toml"))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("run cargo bench")?;
    if !out.status.success() {
        bail!("cargo bench -p outpost --bench nmea failed: {}", out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}
