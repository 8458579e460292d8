#!/usr/bin/env bash
# Release check (not in CI: it downloads a Debian base system, minutes and ~200 MB): installs
# the .deb into a fresh debootstrap'ed Debian with `apt install ./outpost_*.deb`, then checks
# in there that the unit verifies, the config checks, the service was neither enabled nor
# started, and the machine's Redis/Mosquitto configs were not touched.
#
#   sudo packaging/verify-install.sh target/debian/outpost_*.deb [suite] [mirror]
#
# suite defaults to this machine's (e.g. bookworm), mirror to the first in its apt sources.
set -euo pipefail
deb=$(readlink -f "$1")
suite=${2:-$(. /etc/os-release && echo "$VERSION_CODENAME")}
mirror=${3:-$(grep -rhoE '^(deb|URIs:) +[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null | awk '{print $2}' | grep -v security | head -1)}
root=$(mktemp -d /var/tmp/outpost-verify-XXXXXX)
trap 'umount -R "$root/proc" 2>/dev/null || true; cp "$root/debootstrap/debootstrap.log" /tmp/outpost-verify-debootstrap.log 2>/dev/null || true; rm -rf --one-file-system "$root"' EXIT

debootstrap --variant=minbase --include=systemd,redis-server,mosquitto "$suite" "$root" "$mirror"
cp "$deb" "$root/tmp/"
mount -t proc proc "$root/proc"
# No services start inside the chroot (policy-rc.d), as on a machine being provisioned.
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d" && chmod +x "$root/usr/sbin/policy-rc.d"
redis_before=$(sha256sum "$root/etc/redis/redis.conf")
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y "/tmp/$(basename "$deb")"
chroot "$root" systemd-analyze verify /usr/lib/systemd/system/outpost.service
chroot "$root" outpost check -c /etc/outpost/gateway.toml
[ "$(chroot "$root" systemctl is-enabled outpost.service 2>/dev/null || true)" = disabled ]
[ "$redis_before" = "$(sha256sum "$root/etc/redis/redis.conf")" ]
[ ! -e "$root/etc/mosquitto/conf.d/outpost-devices.conf" ]
# Asked for: the drop-ins go in.
chroot "$root" /usr/share/outpost/setup-local-services redis mosquitto
grep -qx 'include /etc/redis/redis-outpost.conf' "$root/etc/redis/redis.conf"
[ -e "$root/etc/mosquitto/conf.d/outpost-devices.conf" ]
echo "verify-install: OK ($suite)"
