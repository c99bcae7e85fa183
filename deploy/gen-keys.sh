#!/usr/bin/env bash
# gen-keys.sh: write deploy/.env for compose.yaml: a new RSA key pair for
# Portal's tokens and the first admin's password.
#
#   PORTAL_PUBLIC_KEY      base64 of the PEM public key  -> MICRO_AUTH_PUBLIC_KEY (every service)
#   PORTAL_PRIVATE_KEY     base64 of the PEM private key -> MICRO_AUTH_PRIVATE_KEY (user only)
#   PORTAL_ADMIN_PASSWORD  the first admin's password    -> PORTAL_ADMIN_PASSWORD (user only)
#   PORTAL_GATEWAY_KEY     32 random bytes, base64       -> PORTAL_GATEWAY_KEY (every service)
#
# Usage: deploy/gen-keys.sh [ENV_FILE]      (default: .env next to this script)
# Set PORTAL_ADMIN_PASSWORD to choose the password (10-128 characters, no
# quote or newline); otherwise a random one is generated. The file is mode
# 600, and the script refuses to overwrite one that exists: new keys end
# every session signed with the old ones, and the admin password only counts
# on the very first start (it is in the user store after that).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
env_file=${1:-$here/.env}

die() { echo "gen-keys.sh: $*" >&2; exit 1; }

[[ -e $env_file ]] && die "$env_file exists; not overwriting it (delete it first to start over)"
command -v openssl >/dev/null 2>&1 || die "openssl is needed"

umask 077
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

openssl genrsa -out "$tmp/private.pem" 2048 2>/dev/null
openssl rsa -in "$tmp/private.pem" -pubout -out "$tmp/public.pem" 2>/dev/null
# openssl base64 -A: one line, the same as GNU `base64 -w0`, also on macOS.
public=$(openssl base64 -A -in "$tmp/public.pem")
private=$(openssl base64 -A -in "$tmp/private.pem")
gateway=$(openssl rand -base64 32)

password=${PORTAL_ADMIN_PASSWORD:-}
if [[ -z $password ]]; then
  password=$(openssl rand -base64 48 | tr -d '/+=\n' | cut -c1-24)
fi
((${#password} >= 10 && ${#password} <= 128)) || die "PORTAL_ADMIN_PASSWORD must be 10-128 characters"
[[ $password != *"'"* && $password != *$'\n'* ]] || die "PORTAL_ADMIN_PASSWORD must not contain a single quote or a newline"

# Single quotes: compose reads the values literally (no $ interpolation).
set -o noclobber
{
  echo "# Written by deploy/gen-keys.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ). Secret: do not commit."
  echo "PORTAL_PUBLIC_KEY='$public'"
  echo "PORTAL_PRIVATE_KEY='$private'"
  echo "PORTAL_ADMIN_PASSWORD='$password'"
  echo "PORTAL_GATEWAY_KEY='$gateway'"
} >"$env_file"
chmod 600 "$env_file"

echo "gen-keys.sh: wrote $env_file (mode 600): RSA-2048 key pair, the admin password (PORTAL_ADMIN_PASSWORD) and the gateway key."
