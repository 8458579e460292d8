//! The hub's package: `cargo deb -p outpost-hub`. Beyond the common checks (main.rs): the
//! maintainer scripts never touch Redis or Mosquitto and make the secret placeholders the
//! unit's `LoadCredential=` needs; the packaged hub.toml is the committed one and
//! `outpost-hub check` passes on it as shipped and with its commented secrets switched on.

use std::path::Path;
use std::process::Command;

use outpost_system_tests::{hub_bin, workspace_root};

use super::{build_deb, check_package, extract, run, service_calls, text};

/// Every file the package must install.
const FILES: [&str; 12] = [
    "./usr/bin/outpost-hub",
    "./etc/outpost/hub.toml",
    "./usr/lib/systemd/system/outpost-hub.service",
    "./usr/share/outpost-hub/mosquitto-hub.conf",
    "./usr/share/outpost-hub/acl",
    "./usr/share/outpost-hub/redis-hub.conf",
    "./usr/share/doc/outpost-hub/install-hub.md",
    "./usr/share/doc/outpost-hub/hub-redis-layout.md",
    "./usr/share/doc/outpost-hub/regions.md",
    "./usr/share/doc/outpost-hub/downlink.md",
    "./usr/share/doc/outpost-hub/README.md",
    "./usr/share/doc/outpost-hub/copyright",
];

#[test]
fn the_hub_deb_installs_what_a_receiver_needs_and_its_config_checks() {
    let tmp = tempfile::Builder::new()
        .prefix("outpost-hub-deb-")
        .tempdir()
        .unwrap();
    hub_bin().expect("debug outpost-hub binary");
    let deb = build_deb("outpost-hub", tmp.path());
    let control = check_package(
        &deb,
        tmp.path(),
        "outpost-hub",
        &FILES,
        "/etc/outpost/hub.toml",
    );
    let postinst = std::fs::read_to_string(control.join("postinst")).unwrap();
    assert!(service_calls(&postinst).is_empty(), "{postinst}");
    let postrm = std::fs::read_to_string(control.join("postrm")).unwrap();
    assert!(service_calls(&postrm).is_empty(), "{postrm}");
    // Every credential the unit loads has a placeholder made by postinst.
    let root = tmp.path().join("root");
    extract(&deb, &root);
    let unit =
        std::fs::read_to_string(root.join("usr/lib/systemd/system/outpost-hub.service")).unwrap();
    let loaded: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("LoadCredential="))
        .map(|l| l.split_once(':').expect("name:path").1)
        .collect();
    assert!(!loaded.is_empty(), "{unit}");
    for path in loaded {
        let name = path.rsplit('/').next().unwrap();
        assert!(
            path.starts_with("/etc/outpost/secrets/") && postinst.contains(name),
            "{path}: no placeholder in postinst:\n{postinst}"
        );
    }
    run_maintainer_scripts(&control, tmp.path());
    check_packaged_config(&root, tmp.path());
}

/// postinst then postrm purge, with /etc/outpost redirected into `tmp`: placeholders made
/// (0600, empty), an existing secret kept; purge removes only the empty placeholders.
fn run_maintainer_scripts(control: &Path, tmp: &Path) {
    let etc = tmp.join("etc-outpost");
    std::fs::create_dir_all(etc.join("secrets")).unwrap();
    std::fs::write(etc.join("secrets/hub-tokens"), "kept\n").unwrap();
    let redirect = |script: &str| {
        let body = std::fs::read_to_string(control.join(script)).unwrap();
        let body = body
            .replace("/etc/outpost", &etc.display().to_string())
            .replace("#DEBHELPER#", "");
        let p = tmp.join(script);
        std::fs::write(&p, body).unwrap();
        p
    };
    run(Command::new("sh")
        .arg(redirect("postinst"))
        .arg("configure"));
    let pw = etc.join("secrets/hub-broker-password");
    let meta = std::fs::metadata(&pw).expect("placeholder made");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.len(), 0);
    assert_eq!(
        std::fs::read_to_string(etc.join("secrets/hub-tokens")).unwrap(),
        "kept\n"
    );
    run(Command::new("sh").arg(redirect("postrm")).arg("purge"));
    assert!(!pw.exists(), "empty placeholder left after purge");
    assert!(
        etc.join("secrets/hub-tokens").exists(),
        "a real secret was removed"
    );
}

/// The packaged hub.toml is the committed file, checks as shipped, and checks again with its
/// commented broker login and token file switched on (pointing at files made here).
fn check_packaged_config(root: &Path, tmp: &Path) {
    let bin = root.join("usr/bin/outpost-hub");
    let conf = root.join("etc/outpost/hub.toml");
    let shipped = std::fs::read_to_string(&conf).unwrap();
    let committed =
        std::fs::read_to_string(workspace_root().join("packaging/outpost-hub/hub.toml")).unwrap();
    assert_eq!(shipped, committed);
    let out = run(Command::new(&bin).arg("check").arg("-c").arg(&conf));
    assert!(
        text(&out).contains("ok (hub hub-1, region default)"),
        "{}",
        text(&out)
    );

    let creds = tmp.join("credentials");
    std::fs::create_dir_all(&creds).unwrap();
    std::fs::write(creds.join("hub-broker-password"), "secret").unwrap();
    std::fs::write(
        creds.join("hub-tokens"),
        "console read 0123456789abcdef0123\n",
    )
    .unwrap();
    let switched_on: String = shipped
        .lines()
        .map(|l| {
            let on = [
                "# username",
                "# password_file",
                "# token_file",
                "# client_id",
            ]
            .iter()
            .any(|k| l.starts_with(k));
            let l = if on { &l[2..] } else { l };
            format!("{l}\n")
        })
        .collect::<String>()
        .replace(
            "/run/credentials/outpost-hub.service/",
            &format!("{}/", creds.display()),
        );
    for key in [
        "\nusername =",
        "\npassword_file =",
        "\ntoken_file =",
        "\nclient_id =",
    ] {
        assert!(
            switched_on.contains(key),
            "{key} not in the shipped hub.toml"
        );
    }
    let f = tmp.join("hub-with-secrets.toml");
    std::fs::write(&f, &switched_on).unwrap();
    run(Command::new(&bin).arg("check").arg("-c").arg(&f));
}
