#!/bin/sh
# Checks that sapwf.core's C files call only downward: every symbol an object file uses
# from another object file must be defined by a file of a lower layer. The layers, bottom
# first (the same order as in src/sapwf.h and docs/DESIGN.md); files on one line are one
# layer and must not call each other:
LAYERS='
buffer clock headers path
exchange
signal
share files lua_request functions
options token
client
batch
core
'
# Usage: scripts/check-layers.sh OBJECT...   (make check-layers builds them and runs this
# with the objects the module is linked from, so stale objects of removed files do not count)
# Reads the symbols with nm, so it sees what the linker sees, whatever the headers say.
# Exit status 1, naming each offending call, when a call goes up, sideways, or into a file
# that is not in the list.
set -eu
[ $# -gt 0 ] || { echo "usage: check-layers.sh OBJECT..." >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

rank=0
echo "$LAYERS" | while read -r line; do
  [ -n "$line" ] || continue
  rank=$((rank + 1))
  for f in $line; do echo "$f $rank"; done
done > "$tmp/ranks"

status=0
for o in "$@"; do
  f=$(basename "$o" .o)
  if ! grep -q "^$f " "$tmp/ranks"; then
    echo "check-layers: $f.c is in no layer: add it to scripts/check-layers.sh" >&2
    status=1
  fi
  nm --defined-only "$o" | awk -v f="$f" '$2 ~ /^[TDBRC]$/ { print $3, f }' >> "$tmp/defs"
  nm -u "$o" | awk -v f="$f" '{ print f, $2 }' >> "$tmp/uses"
done
[ $status -eq 0 ] || exit 1

awk '
  FILENAME == ARGV[1] { rank[$1] = $2; next }
  FILENAME == ARGV[2] { def[$1] = $2; next }
  ($2 in def) && def[$2] != $1 {
    user = $1; owner = def[$2]
    if (rank[owner] >= rank[user]) {
      printf "check-layers: %s.c calls %s of %s.c, which is not below it\n", user, $2, owner
      bad = 1
    }
  }
  END { exit bad }
' "$tmp/ranks" "$tmp/defs" "$tmp/uses" >&2 || exit 1
echo "check-layers: $# files, every call goes down"
