//! The Debian package (issue 17): `cargo deb -p outpost` from `[package.metadata.deb]` in
//! gateway/Cargo.toml. Checks what `dpkg-deb -c` lists, the conffiles and maintainer scripts,
//! that the packaged gateway.toml is exactly `outpost print-config`, and that `outpost check`
//! passes on it and on every shipped profile at the packaged path (extracted with
//! `dpkg-deb -x` into a temp dir).
//!
//! The package is built from the debug binary the other tests use (`--profile dev --no-build`,
//! fast compression; cargo-deb 3.8 warns that dev profiles may be refused some day, hence the
//! pinned version in .ci/run): the metadata is what is under test, and a release build with
//! LTO would cost minutes. Release packages: packaging/build-debs.sh.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use outpost_system_tests::{outpost_bin, workspace_root};

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

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `cargo deb -p outpost` into `out`; the .deb's path.
fn build_deb(out: &Path) -> PathBuf {
    let have = Command::new("cargo").args(["deb", "--version"]).output();
    assert!(
        have.is_ok_and(|o| o.status.success()),
        "cargo-deb is not installed: run .ci/run (it runs `cargo install cargo-deb --locked`)"
    );
    outpost_bin().expect("debug outpost binary");
    let mut cmd = Command::new("cargo");
    // As outpost_bin(): the test's per-package cargo variables would make cargo rebuild.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("CARGO_") && k != "CARGO_HOME" && k != "CARGO_TARGET_DIR" {
            cmd.env_remove(&k);
        }
    }
    run(cmd
        .current_dir(workspace_root())
        .args([
            "deb",
            "-p",
            "outpost",
            "--no-build",
            "--profile",
            "dev",
            "--fast",
        ])
        .arg("-o")
        .arg(out));
    let debs: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "{debs:?}");
    debs[0].clone()
}

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

/// One build for both checks: two `cargo deb` at once would share their staging files.
#[test]
fn the_deb_installs_what_the_gateway_needs_and_its_config_checks() {
    let tmp = tempfile::Builder::new()
        .prefix("outpost-deb-")
        .tempdir()
        .unwrap();
    let deb = build_deb(tmp.path());
    check_contents(&deb, tmp.path());
    check_packaged_config(&deb, tmp.path());
}

/// `dpkg-deb -c`: every file; conffiles; control fields; maintainer scripts.
fn check_contents(deb: &Path, tmp: &Path) {
    let listing = text(&run(Command::new("dpkg-deb").arg("-c").arg(deb)));
    let paths: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .collect();
    for f in FILES {
        assert!(
            paths.contains(&f),
            "{f} missing from the package:\n{listing}"
        );
    }
    for p in shipped_profiles() {
        let f = format!("./etc/outpost/device-profiles/{p}.toml");
        assert!(paths.contains(&f.as_str()), "{f} missing:\n{listing}");
    }
    // Nothing of Redis' or Mosquitto's own: their drop-ins wait under /usr/share/outpost.
    for l in &paths {
        assert!(
            !l.starts_with("./etc/redis") && !l.starts_with("./etc/mosquitto"),
            "the package writes into another service's config: {l}"
        );
    }
    let exe = listing
        .lines()
        .find(|l| l.ends_with("./usr/bin/outpost"))
        .unwrap();
    assert!(exe.starts_with("-rwxr-xr-x"), "{exe}");

    let control = tmp.join("control");
    run(Command::new("dpkg-deb").arg("-e").arg(deb).arg(&control));
    let conffiles = std::fs::read_to_string(control.join("conffiles")).unwrap();
    assert!(
        conffiles.lines().any(|l| l == "/etc/outpost/gateway.toml"),
        "{conffiles}"
    );
    let fields = text(&run(Command::new("dpkg-deb").arg("-f").arg(deb)));
    assert!(fields.contains("Package: outpost\n"), "{fields}");
    // The unit's ExecReload= runs /bin/kill (procps).
    assert!(
        fields
            .lines()
            .any(|l| l.starts_with("Depends:") && l.contains("procps")),
        "{fields}"
    );
    assert!(
        fields.contains("Recommends: redis-server, mosquitto"),
        "{fields}"
    );
    check_maintainer_scripts(&control);
}

/// The scripts touch Redis and Mosquitto only through setup-local-services, and only when
/// OUTPOST_SETUP asks; the service is not started on install (it needs its config first).
fn check_maintainer_scripts(control: &Path) {
    let postinst = std::fs::read_to_string(control.join("postinst")).unwrap();
    let calls: Vec<&str> = postinst
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.contains("redis") || l.contains("mosquitto") || l.contains("setup-local"))
        .collect();
    assert_eq!(
        calls,
        ["/usr/share/outpost/setup-local-services $OUTPOST_SETUP"],
        "{postinst}"
    );
    assert!(postinst.contains("if [ -n \"${OUTPOST_SETUP:-}\" ]; then"));
    assert!(!postinst.contains("deb-systemd-invoke start"), "{postinst}");
    for script in ["postinst", "postrm"] {
        let p = control.join(script);
        run(Command::new("sh").arg("-n").arg(&p));
    }
}

/// `dpkg-deb -x`, then `outpost check` on the packaged config and on every shipped profile at
/// the packaged path.
fn check_packaged_config(deb: &Path, tmp: &Path) {
    let root = tmp.join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root));
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
        if body.contains("\n[mqtt]") {
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
