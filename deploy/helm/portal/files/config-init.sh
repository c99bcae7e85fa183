#!/bin/sh
# config-init.sh: prepare etcd for Portal, then write Portal's default config
# into etcd only when the key is absent. Used by compose.yaml's config-init
# service and by the chart's config-init Job (both mount this file).
#
# The etcd images (v3.5.7 and later) are distroless: etcdctl but no shell.
# So this runs in a small image with a shell and curl (curlimages/curl) and
# talks to etcd's JSON gateway. One transaction, "put if create_revision ==
# 0", makes the check and the write atomic: a config someone already changed
# in etcd is never overwritten, even if two of these run at once.
#
# Environment: ETCD_ENDPOINT (http://etcd:2379, or https://...), ETCD_CA_FILE
# (the CA of etcd's certificate, for https), CONFIG_KEY
# (/micro/config/portal), CONFIG_FILE (/config/portal.yaml), TRIES (60, two
# seconds apart, while etcd does not answer).
# With ETCD_USERNAME and ETCD_PASSWORD it logs in as that user; with
# ETCD_ROOT_PASSWORD too, it first turns etcd's authentication on when it
# is off: users root and ETCD_USERNAME, the latter with a role that may
# read and write /micro/ only.
set -eu

endpoint=${ETCD_ENDPOINT:-http://etcd:2379}
key=${CONFIG_KEY:-/micro/config/portal}
file=${CONFIG_FILE:-/config/portal.yaml}
tries=${TRIES:-60}
user=${ETCD_USERNAME:-}
token=

b64() { base64 | tr -d '\n'; }
# post PATH JSON: etcd's answer on stdout; fails on no answer or an error status.
post() {
  if [ -n "${ETCD_CA_FILE:-}" ]; then
    curl -sS --fail-with-body --max-time 10 --cacert "$ETCD_CA_FILE" \
      -H 'Content-Type: application/json' ${token:+-H "Authorization: $token"} -d "$2" "$endpoint$1"
  else
    curl -sS --fail-with-body --max-time 10 \
      -H 'Content-Type: application/json' ${token:+-H "Authorization: $token"} -d "$2" "$endpoint$1"
  fi
}
field() { tr -d ' \n' | sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }

[ -s "$file" ] || { echo "config-init: $file is missing or empty" >&2; exit 1; }

i=1
until out=$(post /v3/maintenance/status '{}' 2>&1); do
  if [ "$i" -ge "$tries" ]; then
    echo "config-init: no answer from etcd at $endpoint after $i tries: $out" >&2
    exit 1
  fi
  i=$((i + 1))
  sleep 2
done

if [ -n "$user" ]; then
  login=$(printf '{"name":"%s","password":"%s"}' "$user" "${ETCD_PASSWORD:?ETCD_PASSWORD is required with ETCD_USERNAME}")
  if ! out=$(post /v3/auth/authenticate "$login" 2>&1); then
    [ -n "${ETCD_ROOT_PASSWORD:-}" ] || { echo "config-init: etcd refused $user: $out" >&2; exit 1; }
    # Authentication is off (a fresh etcd): users, role, then on.
    prefix=$(printf '/micro/' | b64)
    end=$(printf '/micro0' | b64)
    post /v3/auth/user/add "$(printf '{"name":"root","password":"%s"}' "$ETCD_ROOT_PASSWORD")" >/dev/null
    post /v3/auth/user/grant "$(printf '{"user":"root","role":"root"}')" >/dev/null
    post /v3/auth/role/add '{"name":"portal"}' >/dev/null
    post /v3/auth/role/grant "$(printf '{"name":"portal","perm":{"permType":"READWRITE","key":"%s","range_end":"%s"}}' "$prefix" "$end")" >/dev/null
    post /v3/auth/user/add "$login" >/dev/null
    post /v3/auth/user/grant "$(printf '{"user":"%s","role":"portal"}' "$user")" >/dev/null
    post /v3/auth/enable '{}' >/dev/null
    echo "config-init: etcd authentication on (users root and $user)"
    out=$(post /v3/auth/authenticate "$login")
  fi
  token=$(printf '%s' "$out" | field token)
  [ -n "$token" ] || { echo "config-init: no token from etcd: $out" >&2; exit 1; }
fi

k=$(printf '%s' "$key" | b64)
v=$(b64 <"$file")
body=$(printf '{"compare":[{"key":"%s","target":"CREATE","result":"EQUAL","createRevision":"0"}],"success":[{"requestPut":{"key":"%s","value":"%s"}}]}' "$k" "$k" "$v")
out=$(post /v3/kv/txn "$body" | tr -d ' \n') || { echo "config-init: etcd refused the write: $out" >&2; exit 1; }
case $out in
*'"succeeded":true'*) echo "config-init: wrote $file to $key" ;;
*'"header"'*) echo "config-init: $key is already set; left as it is" ;;
*)
  echo "config-init: unexpected answer from etcd: $out" >&2
  exit 1
  ;;
esac
