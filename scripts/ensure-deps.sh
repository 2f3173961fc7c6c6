#!/bin/sh
# Installs the Debian/Ubuntu packages that building, testing, the docs and the demo need, if
# any are missing. Idempotent and silent when everything is there, so `make test`, `make docs`
# and `make demo` can call it every time. Extra packages can be asked for:
# scripts/ensure-deps.sh wrk valgrind
set -eu

# The build, the Lua 5.4 suite, the docs, the emulator (nginx and its Lua module, openssl),
# spec/30's nginx bridge (built for OpenResty's LuaJIT: luajit2 and its headers), and the
# tools the specs drive (curl, ps/pkill from procps, python3 for spec/47's listener).
# A base Debian system lacks most of these; CI's base-system stage proves the list whole.
PACKAGES="gcc make pkg-config lua5.4 liblua5.4-dev lua-cjson lua-busted lua-argparse lua-ldoc luarocks
libcurl4-openssl-dev nginx libnginx-mod-http-lua luajit2 libluajit2-5.1-dev openssl curl
ca-certificates procps python3 $*"

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "ensure-deps: not a Debian/Ubuntu system; install by hand: $PACKAGES" >&2
  exit 0
fi

missing=""
for p in $PACKAGES; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  case "$status" in
    *"install ok installed"*) ;;
    *) missing="$missing $p" ;;
  esac
done
[ -z "$missing" ] && exit 0

SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "ensure-deps: missing packages:$missing (run as root or install them)" >&2
    exit 1
  fi
fi
echo "ensure-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# Refresh the package lists only when the first attempt cannot find something.
if ! $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1; then
  $SUDO apt-get update -qq >/dev/null
  if ! $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1; then
    # One package that cannot be installed (Debian's npm beside a nodejs from elsewhere,
    # which brings its own npm) must not keep the others out: each alone, then name those
    # that failed.
    failed=""
    for p in $missing; do
      $SUDO apt-get install -y -qq --no-install-recommends "$p" >/dev/null 2>&1 \
        || failed="$failed $p"
    done
    if [ -n "$failed" ]; then
      echo "ensure-deps: could not install:$failed" >&2
      exit 1
    fi
  fi
fi
# Debian starts the packaged nginx service on port 80 when it can; the emulator runs its own
# nginx in its own prefix, so the system one is not needed (and is left as the system has it).
