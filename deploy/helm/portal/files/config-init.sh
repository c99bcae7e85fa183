#!/bin/sh
# config-init.sh: write Portal's default config into etcd, only when the key
# is absent. Used by compose.yaml's config-init service and (as a copy in
# k8s/configmap.yaml) by the k8s/config-init.yaml Job: keep the two the same.
#
# The etcd images (v3.5.7 and later) are distroless: they have etcdctl but no
# shell to run `etcdctl put KEY "$(cat FILE)"`. So this runs in a small image
# with a shell (alpine: busybox sh, wget, base64) and talks to etcd's JSON
# gateway (/v3/kv/txn). One transaction, "put if create_revision == 0",
# makes the check and the write atomic: a config someone already changed in
# etcd is never overwritten, even if two of these run at once.
#
# Environment: ETCD_ENDPOINT (http://etcd:2379), CONFIG_KEY
# (/micro/config/portal), CONFIG_FILE (/config/portal.yaml), TRIES (60, two
# seconds apart, while etcd does not answer).
set -eu

endpoint=${ETCD_ENDPOINT:-http://etcd:2379}
key=${CONFIG_KEY:-/micro/config/portal}
file=${CONFIG_FILE:-/config/portal.yaml}
tries=${TRIES:-60}

b64() { base64 | tr -d '\n'; }

[ -s "$file" ] || { echo "config-init: $file is missing or empty" >&2; exit 1; }
k=$(printf '%s' "$key" | b64)
v=$(b64 <"$file")
body=$(printf '{"compare":[{"key":"%s","target":"CREATE","result":"EQUAL","createRevision":"0"}],"success":[{"requestPut":{"key":"%s","value":"%s"}}]}' "$k" "$k" "$v")

# No wget -T: some busybox builds (Debian's 1.35) crash with it. etcd
# answers at once or refuses the connection; the k8s Job's
# activeDeadlineSeconds bounds the rare hang.
i=1
until out=$(wget -q -O - --header 'Content-Type: application/json' \
  --post-data "$body" "$endpoint/v3/kv/txn" 2>&1); do
  if [ "$i" -ge "$tries" ]; then
    echo "config-init: no answer from etcd at $endpoint after $i tries: $out" >&2
    exit 1
  fi
  i=$((i + 1))
  sleep 2
done

out=$(printf '%s' "$out" | tr -d ' \n')
case $out in
*'"succeeded":true'*) echo "config-init: wrote $file to $key" ;;
*'"header"'*) echo "config-init: $key is already set; left as it is" ;;
*)
  echo "config-init: unexpected answer from etcd: $out" >&2
  exit 1
  ;;
esac
