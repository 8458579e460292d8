//! Build configuration that CI cannot exercise by building (no ARM toolchains here): the
//! `Cross.toml` targets, the release profile's settings, and "rustls, no OpenSSL" (issue 6).

use std::process::Command;

use outpost_system_tests::workspace_root;

fn read(rel: &str) -> String {
    std::fs::read_to_string(workspace_root().join(rel)).unwrap()
}

#[test]
fn cross_toml_lists_both_arm_targets_with_pinned_images() {
    let t: toml::Table = toml::from_str(&read("Cross.toml")).expect("Cross.toml parses");
    let targets = t["target"].as_table().expect("[target.*] tables");
    for triple in ["aarch64-unknown-linux-gnu", "armv7-unknown-linux-gnueabihf"] {
        let image = targets
            .get(triple)
            .unwrap_or_else(|| panic!("{triple} missing"))
            .get("image")
            .and_then(|i| i.as_str())
            .unwrap_or_else(|| panic!("{triple}: no image"));
        assert!(image.contains(triple), "{triple}: image {image}");
        assert!(
            image.rsplit(':').next().unwrap().contains('.'),
            "{image} not pinned"
        );
    }
    let doc = read("cross/README.md");
    for cmd in [
        "cross build --release -p outpost --target aarch64-unknown-linux-gnu",
        "cross build --release -p outpost --target armv7-unknown-linux-gnueabihf",
    ] {
        assert!(doc.contains(cmd), "cross/README.md lacks `{cmd}`");
    }
}

#[test]
fn release_profile_is_small_and_each_setting_says_why() {
    let text = read("Cargo.toml");
    let t: toml::Table = toml::from_str(&text).unwrap();
    let release = t["profile"]["release"].as_table().unwrap();
    assert_eq!(release["lto"].as_bool(), Some(true));
    assert_eq!(release["codegen-units"].as_integer(), Some(1));
    assert_eq!(release["strip"].as_bool(), Some(true));
    assert_eq!(release["panic"].as_str(), Some("abort"));
    let lines: Vec<&str> = text.lines().collect();
    for key in ["lto", "codegen-units", "strip", "panic"] {
        let i = lines
            .iter()
            .position(|l| l.starts_with(&format!("{key} =")))
            .unwrap();
        assert!(
            lines[i - 1].starts_with('#'),
            "{key} has no comment above it"
        );
    }
}

/// Every package the gateway links, on any target (names only).
fn gateway_dependencies() -> Vec<String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "-p",
            "outpost",
            "-e",
            "normal,build",
            "--target",
            "all",
        ])
        .args(["--prefix", "none", "--format", "{p}"])
        .arg("--manifest-path")
        .arg(workspace_root().join("Cargo.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn tls_is_rustls_with_ring_and_no_openssl_or_aws_lc() {
    let deps = gateway_dependencies();
    assert!(deps.iter().any(|d| d == "rustls"), "{deps:?}");
    assert!(deps.iter().any(|d| d == "ring"), "{deps:?}");
    for banned in [
        "openssl-sys",
        "openssl",
        "native-tls",
        "aws-lc-sys",
        "aws-lc-rs",
    ] {
        assert!(
            !deps.iter().any(|d| d == banned),
            "{banned} is in the gateway's dependency graph: cross builds need a C toolchain \
             and OpenSSL for every target (see `cargo tree -p outpost -i {banned}`)"
        );
    }
}
