#!/usr/bin/env bash
# Release check (not in CI: it downloads a Debian base system, minutes and ~200 MB): installs
# the .debs into a fresh debootstrap'ed Debian with `apt install ./<package>_*.deb`, then
# checks in there, for each package, that its unit verifies, its packaged config checks, the
# service was neither enabled nor started, and the machine's Redis/Mosquitto configs were not
# touched; for outpost, that setup-local-services applies the drop-ins when asked.
#
#   sudo packaging/verify-install.sh target/debian/outpost_*.deb [target/debian/outpost-hub_*.deb] \
#        [-- suite [mirror]]
#
# suite defaults to this machine's (e.g. bookworm), mirror to the first in its apt sources.
set -euo pipefail
debs=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do debs+=("$(readlink -f "$1")"); shift; done
[ "${1:-}" = "--" ] && shift
[ ${#debs[@]} -gt 0 ] || { echo "usage: $0 DEB... [-- suite [mirror]]" >&2; exit 2; }
suite=${1:-$(. /etc/os-release && echo "$VERSION_CODENAME")}
mirror=${2:-$(grep -rhoE '^(deb|URIs:) +[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null | awk '{print $2}' | grep -v security | head -1)}
root=$(mktemp -d /var/tmp/outpost-verify-XXXXXX)
trap 'umount -R "$root/proc" 2>/dev/null || true; cp "$root/debootstrap/debootstrap.log" /tmp/outpost-verify-debootstrap.log 2>/dev/null || true; rm -rf --one-file-system "$root"' EXIT

debootstrap --variant=minbase --include=systemd,redis-server,mosquitto "$suite" "$root" "$mirror"
mount -t proc proc "$root/proc"
# No services start inside the chroot (policy-rc.d), as on a machine being provisioned.
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d" && chmod +x "$root/usr/sbin/policy-rc.d"
redis_before=$(sha256sum "$root/etc/redis/redis.conf")
mosquitto_before=$(find "$root/etc/mosquitto" -type f -exec sha256sum {} + | sort)
inside=()
for deb in "${debs[@]}"; do cp "$deb" "$root/tmp/"; inside+=("/tmp/$(basename "$deb")"); done
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${inside[@]}"
[ "$redis_before" = "$(sha256sum "$root/etc/redis/redis.conf")" ]
[ "$mosquitto_before" = "$(find "$root/etc/mosquitto" -type f -exec sha256sum {} + | sort)" ]
for deb in "${debs[@]}"; do
  pkg=$(dpkg-deb -f "$deb" Package)
  case "$pkg" in
    outpost) conf=/etc/outpost/gateway.toml ;;
    outpost-hub) conf=/etc/outpost/hub.toml ;;
    *) echo "verify-install: unknown package $pkg" >&2; exit 1 ;;
  esac
  chroot "$root" systemd-analyze verify "/usr/lib/systemd/system/$pkg.service"
  chroot "$root" "$pkg" check -c "$conf"
  [ "$(chroot "$root" systemctl is-enabled "$pkg.service" 2>/dev/null || true)" = disabled ]
  echo "verify-install: $pkg installed, unit verified, $conf checks"
done
if [ -e "$root/usr/share/outpost/setup-local-services" ]; then
  # Asked for: the gateway's drop-ins go in.
  chroot "$root" /usr/share/outpost/setup-local-services redis mosquitto
  grep -qx 'include /etc/redis/redis-outpost.conf' "$root/etc/redis/redis.conf"
  [ -e "$root/etc/mosquitto/conf.d/outpost-devices.conf" ]
fi
echo "verify-install: OK ($suite)"
