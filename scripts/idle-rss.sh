#!/usr/bin/env bash
# Idle RSS of the embedded mode, as the README's Measured table reports it:
# start BIN on a fresh data dir, stop it, start it again, 5 x GET /login and
# GET /healthz, one admin sign-in, 45 s idle (hashing returns its memory after 30 s), then VmRSS, RssAnon, RssFile.
#   scripts/idle-rss.sh BIN [PORT]     (go build -o /tmp/portal ./cmd/portal first)
set -u
bin=${1:?usage: idle-rss.sh BIN [PORT]}; port=${2:-18080}
dir=$(mktemp -d)
export PORTAL_ADMIN_PASSWORD=rss-admin-password-1
start() { "$bin" --data_dir "$dir" --http_address 127.0.0.1:$port >"$dir/log" 2>&1 & pid=$!;
  for i in $(seq 200); do curl -fsS -o /dev/null http://127.0.0.1:$port/readyz 2>/dev/null && return; sleep 0.05; done; echo "not ready"; cat "$dir/log"; exit 1; }
start; kill $pid; wait $pid
start
for i in 1 2 3 4 5; do curl -fsS -o /dev/null http://127.0.0.1:$port/login; curl -fsS -o /dev/null http://127.0.0.1:$port/healthz; done
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' -d '{"username":"admin","password":"rss-admin-password-1"}' http://127.0.0.1:$port/api/v1/login)
sleep 45
echo "login=$code $(grep -E 'VmRSS|RssAnon|RssFile' /proc/$pid/status | tr -s ' \t' ' ' | tr '\n' ' ')"
kill $pid; wait $pid 2>/dev/null; rm -rf "$dir"
