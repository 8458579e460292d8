//! The README's first command, `outpost demo`: the whole system (private Redis and brokers, the
//! real `outpost-hub`, simulated devices, an uplink cut and an emergency) runs to its summary
//! and reports nothing lost. Here with the debug binaries; the README runs the release ones.

use outpost_system_tests::outpost::{hub_bin, outpost_command};

#[test]
fn demo_runs_end_to_end_and_loses_nothing() {
    let out = outpost_command()
        .unwrap()
        .arg("demo")
        .env("OUTPOST_HUB_BIN", hub_bin().unwrap())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let line = |head: &str| {
        stdout
            .lines()
            .find(|l| l.trim_start().starts_with(head))
            .unwrap_or_else(|| panic!("no {head:?} line:\n{stdout}"))
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let accepted = line("accepted by the gateway");
    let stored = line("stored at the hub");
    assert!(accepted[4].parse::<u64>().unwrap() > 0, "{stdout}");
    assert_eq!(accepted[4], stored[4], "hub = accepted:\n{stdout}");
    assert_eq!(line("lost")[1], "0", "{stdout}");
    assert!(stdout.contains("\"reason\": \"emergency\""), "{stdout}");
    assert!(stdout.contains("Nothing lost."), "{stdout}");
}
