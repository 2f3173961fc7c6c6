#!/usr/bin/env bash
# CI stage: the README's two commands on a machine that has only Debian's base system.
# A minimal Debian 12 root is made with mmdebstrap from Debian's registry; the packages the
# README says a bare system needs first (its "apt-get install ..." line above the two
# commands) are added, and nothing else; a clean clone goes to /root/sapwf inside it, a
# folder only root may enter (so nginx's workers, which run as nobody, must not need the
# checkout); then `make demo` and `make test` run there, as root, chrooted. Any package
# that ensure-deps.sh forgot fails a spec here, even when this machine has it.
#
#   bash .ci/base-system.sh [REPO]      (REPO: the clone to test; default: this checkout)
# Exits 0 when the demo succeeded and the suite ended "N passed, 0 failed".
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(cd "${1:-.}" && pwd)

# The README's words, so the two cannot drift apart.
needs=$(grep -o 'needs `apt-get install [^`]*` first' README.md \
  | sed -n 's/^needs `apt-get install \(.*\)` first$/\1/p' | head -n 1)
if [ -z "$needs" ]; then
  echo "base-system: README.md names no 'apt-get install ...' for a bare base system" >&2
  exit 1
fi
echo "base-system: the README's prerequisites: $needs"

work=$(mktemp -d /tmp/sapwf-base.XXXXXX)
root="$work/root"
cleanup() {
  for m in "$root/dev/pts" "$root/dev" "$root/proc" "$root/sys"; do
    mountpoint -q "$m" 2>/dev/null && umount -l "$m"
  done
  rm -rf "$work"
}
trap cleanup EXIT

# The same mirrors as this machine's apt sources (Debian's registry is all CI may reach).
mmdebstrap --quiet --variant=minbase --include="$(echo "$needs" | tr ' ' ',')" bookworm "$root" \
  "deb http://deb.debian.org/debian bookworm main" \
  "deb http://deb.debian.org/debian bookworm-updates main" \
  "deb http://deb.debian.org/debian-security bookworm-security main"

cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
# This machine's apt settings for the registry (e.g. its snapshot's validity), not packages.
for f in /etc/apt/apt.conf.d/99*; do [ -f "$f" ] && cp "$f" "$root/etc/apt/apt.conf.d/"; done
mount -t proc proc "$root/proc"
mount --bind /sys "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"

git clone --quiet --no-hardlinks "$repo" "$root/root/sapwf"
chmod 700 "$root/root"

run() {
  chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /bin/sh -c "cd /root/sapwf && $1"
}

echo "base-system: make demo"
run "make demo"
echo "base-system: make test"
log="$work/test.log"
run "make test" 2>&1 | tee "$log" | grep -E '^\[  (FAILED|ERROR) |^[0-9]+ passed' || true
last=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
echo "base-system: $last"
case "$last" in
  *" passed, 0 failed"*) exit 0 ;;
  *) tail -n 60 "$log"; exit 1 ;;
esac
