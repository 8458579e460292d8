//! The gateway's package: `cargo deb -p outpost`. Beyond the common checks (main.rs): every
//! shipped profile is in it, the maintainer scripts touch Redis and Mosquitto only through
//! setup-local-services when OUTPOST_SETUP asks, and the packaged gateway.toml is exactly
//! `outpost print-config` and checks, with every shipped profile at the packaged path.

use std::path::Path;
use std::process::Command;

use outpost_system_tests::{outpost_bin, workspace_root};

use super::{build_deb, check_package, extract, listing, run, service_calls, text};

/// Every file the package must install (beyond the device profiles, checked one by one).
const FILES: [&str; 13] = [
    "./usr/bin/outpost",
    "./etc/outpost/gateway.toml",
    "./usr/lib/systemd/system/outpost.service",
    "./usr/lib/udev/rules.d/99-outpost-gps.rules",
    "./usr/share/outpost/redis-outpost.conf",
    "./usr/share/outpost/mosquitto-devices.conf",
    "./usr/share/outpost/mosquitto-devices.acl",
    "./usr/share/outpost/setup-local-services",
    "./usr/share/doc/outpost/install.md",
    "./usr/share/doc/outpost/device-profiles.md",
    "./usr/share/doc/outpost/guarantees.md",
    "./usr/share/doc/outpost/README.md",
    "./usr/share/doc/outpost/copyright",
];

fn shipped_profiles() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(workspace_root().join("device-profiles"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn the_gateway_deb_installs_what_the_gateway_needs_and_its_config_checks() {
    let tmp = tempfile::Builder::new()
        .prefix("outpost-deb-")
        .tempdir()
        .unwrap();
    outpost_bin().expect("debug outpost binary");
    let deb = build_deb("outpost", tmp.path());
    let control = check_package(
        &deb,
        tmp.path(),
        "outpost",
        &FILES,
        "/etc/outpost/gateway.toml",
    );
    let (paths, all) = listing(&deb);
    for p in shipped_profiles() {
        let f = format!("./etc/outpost/device-profiles/{p}.toml");
        assert!(paths.contains(&f), "{f} missing:\n{all}");
    }
    // Redis and Mosquitto only through setup-local-services, and only when OUTPOST_SETUP asks.
    let postinst = std::fs::read_to_string(control.join("postinst")).unwrap();
    assert_eq!(
        service_calls(&postinst),
        ["/usr/share/outpost/setup-local-services $OUTPOST_SETUP"],
        "{postinst}"
    );
    assert!(postinst.contains("if [ -n \"${OUTPOST_SETUP:-}\" ]; then"));
    check_packaged_config(&deb, tmp.path());
}

/// `dpkg-deb -x`, then `outpost check` on the packaged config and on every shipped profile at
/// the packaged path.
fn check_packaged_config(deb: &Path, tmp: &Path) {
    let root = tmp.join("root");
    extract(deb, &root);
    let bin = root.join("usr/bin/outpost");
    let conf = root.join("etc/outpost/gateway.toml");

    // The packaged config is print-config, unedited, and valid as shipped.
    let printed = text(&run(Command::new(&bin).arg("print-config")));
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), printed);
    run(Command::new(&bin).arg("check").arg("-c").arg(&conf));

    // Every shipped profile, at the packaged path, used by one source of the packaged config.
    let profiles = root.join("etc/outpost/device-profiles");
    let mut cfg = printed.replacen(
        "[gateway]\n",
        &format!("[gateway]\nprofiles = \"{}\"\n", profiles.display()),
        1,
    );
    for p in shipped_profiles() {
        let body = std::fs::read_to_string(profiles.join(format!("{p}.toml"))).unwrap();
        if body.contains("decoder = \"cot\"") {
            // The TAK users' profile is used by a [[tak]] output with subscribe = true.
            cfg += "\n[[tak]]\nurl = \"tcp://127.0.0.1:8087\"\nsubscribe = true\n";
        } else if body.contains("\n[mqtt]") {
            cfg += &format!("\n[[mqtt]]\nprofile = \"{p}\"\n");
        } else if body.contains("decoder = \"gpsd\"") {
            cfg += &format!(
                "\n[[serial]]\ndevice = \"{p}\"\npath = \"127.0.0.1:2947\"\nprofile = \"{p}\"\n"
            );
        } else {
            cfg += &format!(
                "\n[[serial]]\ndevice = \"{p}\"\npath = \"/dev/ttyUSB0\"\nprofile = \"{p}\"\n"
            );
        }
    }
    let all = tmp.join("all-profiles.toml");
    std::fs::write(&all, &cfg).unwrap();
    let out = run(Command::new(&bin).arg("check").arg("-c").arg(&all));
    let said = format!("{}{}", text(&out), String::from_utf8_lossy(&out.stderr));
    for p in shipped_profiles() {
        assert!(
            said.contains(&p),
            "check did not mention profile {p}:\n{said}\n{cfg}"
        );
    }
}

#[test]
fn committed_packaged_config_is_print_config() {
    // Cheap guard that needs no cargo-deb: regenerate with
    // `cargo run -p outpost -- print-config > packaging/outpost/gateway.toml`.
    let out = run(Command::new(outpost_bin().unwrap()).arg("print-config"));
    let committed =
        std::fs::read_to_string(workspace_root().join("packaging/outpost/gateway.toml")).unwrap();
    assert_eq!(
        committed,
        text(&out),
        "packaging/outpost/gateway.toml is stale"
    );
}
