#!/usr/bin/env bash
# Installs the system packages the tests and `make proto` need, when missing:
#   chromium-headless-shell -> chromium-headless-shell (the browser tests:
#                         Chromium's headless shell, lighter than the
#                         desktop chromium; internal/portal's findChromium)
#   protoc             -> protobuf-compiler  (make proto / make proto-check)
#   gcc                -> gcc libc6-dev      (cgo, which make test-race's -race needs)
#   make               -> make
#   etcd               -> etcd-server        (integration tests: internal/testenv)
#   redis-server       -> redis-server       (integration tests: internal/testenv)
# (NATS is not here: the tests and the bench build the NATS they run from its
# Go module, testenv.BuildNATS.)
# With arguments (binary names from the list, e.g. `deps.sh etcd redis-server`,
# as `make bench` runs it) only those are checked. With --check first, it
# installs nothing and exits 1 when something is missing (make test then
# compiles while this script installs).
# Idempotent and quick when everything is present: apt-get runs only when a
# binary is missing, and `apt-get update` at most once.
# Without root (and without password-less sudo) it only warns and exits 0, so
# `make test` still runs on a user's machine; the browser test then skips.
set -euo pipefail

# binary:debian-packages
wanted=(
  "chromium-headless-shell:chromium-headless-shell"
  "protoc:protobuf-compiler"
  "gcc:gcc libc6-dev"
  "make:make"
  "etcd:etcd-server"
  "redis-server:redis-server"
)

check=
if [ "${1:-}" = --check ]; then
  check=1
  shift
fi

if [ $# -gt 0 ]; then
  only=" $* "
  chosen=()
  for w in "${wanted[@]}"; do
    case $only in *" ${w%%:*} "*) chosen+=("$w") ;; esac
  done
  wanted=("${chosen[@]}")
fi

# have BIN: BIN is on PATH or where Debian puts it (/usr/sbin is not on a
# normal user's PATH; internal/testenv looks in these same directories).
have() {
  command -v "$1" >/dev/null 2>&1 && return 0
  local d
  for d in /usr/bin /usr/sbin /usr/local/bin; do
    [ -x "$d/$1" ] && return 0
  done
  return 1
}

missing_bins=()
missing_pkgs=()
for w in "${wanted[@]}"; do
  bin=${w%%:*} pkg=${w#*:}
  # The browser test uses $PORTAL_CHROMIUM instead when it is set.
  if [ "$bin" = chromium-headless-shell ] && [ -n "${PORTAL_CHROMIUM:-}" ]; then continue; fi
  if ! have "$bin"; then
    missing_bins+=("$bin")
    read -r -a pkgs <<<"$pkg"
    missing_pkgs+=("${pkgs[@]}")
  fi
done

if [ ${#missing_pkgs[@]} -eq 0 ]; then
  exit 0
fi
if [ -n "$check" ]; then
  exit 1
fi

warn() {
  {
    echo
    echo "################################################################################"
    echo "## scripts/deps.sh: MISSING: ${missing_bins[*]}"
    echo "##   (Debian packages: ${missing_pkgs[*]})"
    echo "## $1"
    echo "## Install them yourself, e.g.:"
    echo "##   sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing_pkgs[*]}"
    case " ${missing_bins[*]} " in *" chromium-headless-shell "*)
      echo "## WITHOUT chromium-headless-shell (or chromium) THE BROWSER TESTS WILL BE SKIPPED." ;;
    esac
    case " ${missing_bins[*]} " in *" protoc "*)
      echo "## Without protoc, make proto and make proto-check (make lint) fail." ;;
    esac
    case " ${missing_bins[*]} " in *" gcc "*)
      echo "## Without gcc, make test-race fails: the race detector needs cgo." ;;
    esac
    case " ${missing_bins[*]} " in *" etcd "*|*" redis-server "*)
      echo "## WITHOUT etcd OR redis-server THE INTEGRATION TESTS THAT NEED THEM"
      echo "## WILL BE SKIPPED (and fail in CI, where PORTAL_REQUIRE_SERVERS=1)." ;;
    esac
    echo "################################################################################"
    echo
  } >&2
}

if ! command -v apt-get >/dev/null 2>&1; then
  warn "apt-get is not available here: cannot install them automatically."
  exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
    sudo=(sudo -n)
  else
    warn "Not root and no password-less sudo: cannot install them automatically."
    exit 0
  fi
fi

echo "scripts/deps.sh: installing ${missing_pkgs[*]} (missing: ${missing_bins[*]})" >&2
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${missing_pkgs[@]}"

for b in "${missing_bins[@]}"; do
  have "$b" || { echo "scripts/deps.sh: $b still missing after apt-get install" >&2; exit 1; }
done
