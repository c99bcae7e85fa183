#!/usr/bin/env bash
# Runs govulncheck against the offline Go vulnerability database.
#   database: $PORTAL_VULNDB, else the first existing of
#             <repo>/../shared/vulndb and /work/shared/vulndb;
#   govulncheck $GOVULNCHECK_VERSION is built into ./bin when missing.
# Without a database it fails loudly (exit 1): a lint that did not check
# must not pass. It fails (govulncheck's exit 3) when the code reaches a
# known vulnerability.
set -euo pipefail

GOVULNCHECK_VERSION=v1.9.0
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

# --- the database -----------------------------------------------------------
db=
if [ -n "${PORTAL_VULNDB:-}" ]; then
  db=$PORTAL_VULNDB
else
  for d in "$repo/../shared/vulndb" /work/shared/vulndb; do
    if [ -d "$d" ]; then db=$d; break; fi
  done
fi
if [ -z "$db" ] || [ ! -d "$db" ]; then
  {
    echo
    echo "################################################################################"
    echo "## scripts/vulncheck.sh: NO OFFLINE VULNERABILITY DATABASE FOUND"
    if [ -n "${PORTAL_VULNDB:-}" ]; then
      echo "##   PORTAL_VULNDB=$PORTAL_VULNDB is not a directory"
    else
      echo "##   looked at: $repo/../shared/vulndb /work/shared/vulndb"
    fi
    echo "## GOVULNCHECK CANNOT RUN: FAILING. Set PORTAL_VULNDB to the database directory."
    echo "################################################################################"
    echo
  } >&2
  exit 1
fi
db=$(cd "$db" && pwd)

# --- govulncheck ------------------------------------------------------------
bin=$repo/bin
gvc=$bin/govulncheck
# A govulncheck built from the module cache reports version v0.0.0: this
# file then records which version it is.
stamp=$bin/.govulncheck.version

have_gvc() {
  [ -x "$gvc" ] || return 1
  local v
  v=$("$gvc" -version 2>/dev/null) || true
  grep -q "govulncheck@$GOVULNCHECK_VERSION\$" <<<"$v" && return 0
  [ "$(cat "$stamp" 2>/dev/null)" = "$GOVULNCHECK_VERSION" ]
}

if ! have_gvc; then
  mkdir -p "$bin"
  rm -f "$stamp"
  echo "scripts/vulncheck.sh: building govulncheck $GOVULNCHECK_VERSION into bin/" >&2
  if ! GOBIN=$bin go install "golang.org/x/vuln/cmd/govulncheck@$GOVULNCHECK_VERSION"; then
    # go install can fail on the proxy's deprecation lookup: build it from the
    # module cache instead, as the Makefile does for protoc-gen-micro.
    echo "scripts/vulncheck.sh: go install failed, building from the module cache" >&2
    go mod download "golang.org/x/vuln@$GOVULNCHECK_VERSION"
    (cd "$(go env GOMODCACHE)/golang.org/x/vuln@$GOVULNCHECK_VERSION" &&
      GOFLAGS=-mod=mod go build -o "$gvc" ./cmd/govulncheck)
    echo "$GOVULNCHECK_VERSION" >"$stamp"
  fi
fi

echo "scripts/vulncheck.sh: govulncheck $GOVULNCHECK_VERSION -db file://$db ./..." >&2
exec "$gvc" -db "file://$db" ./...
