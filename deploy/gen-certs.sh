#!/usr/bin/env bash
# gen-certs.sh: the certificates and backend credentials compose.yaml runs
# with: etcd with TLS and a password, Redis with TLS and one ACL user per
# service, NATS with TLS and a user.
#
#   deploy/gen-keys.sh && deploy/gen-certs.sh     # once, in this order
#
# Writes CERTS_DIR (default certs/ next to this script; refuses to
# overwrite it):
#   ca.crt                 the CA every client trusts (PORTAL_*_CA_FILE); ca.key is not kept
#   etcd.crt, etcd.key     etcd's server certificate (DNS etcd, localhost, IP 127.0.0.1)
#   redis.crt, redis.key   Redis's (DNS redis, ...)
#   nats.crt, nats.key     NATS's (DNS nats, ...)
#   users.acl              Redis users: portal-user, portal-system, portal-web, each
#                          confined to its key prefix (redisx.ACLRules), and health (PING only)
#   nats.conf              NATS: TLS, JetStream, the user portal
# and appends to ENV_FILE (default .env next to this script, gen-keys.sh's):
#   PORTAL_ETCD_ROOT_PASSWORD, PORTAL_ETCD_PASSWORD, PORTAL_REDIS_USER_PASSWORD,
#   PORTAL_REDIS_SYSTEM_PASSWORD, PORTAL_REDIS_WEB_PASSWORD, PORTAL_NATS_PASSWORD
#
# Passwords are hex, so they fit in a URL unescaped. The key files are
# readable by all (mode 644, in a 755 folder): the containers run as other
# uids than yours and read them through a bind mount. Keep deploy/certs on a
# host you alone use, or copy them into volumes owned by the containers' uids.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir=${CERTS_DIR:-$here/certs}
env_file=${ENV_FILE:-$here/.env}

die() { echo "gen-certs.sh: $*" >&2; exit 1; }

command -v openssl >/dev/null 2>&1 || die "openssl is needed"
[[ -e $dir ]] && die "$dir exists; not overwriting it (delete it first to start over)"
[[ -f $env_file ]] || die "$env_file is missing: run gen-keys.sh first"
grep -q '^PORTAL_ETCD_PASSWORD=' "$env_file" && die "$env_file already has the backend passwords"

mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The CA signs the three server certificates, then its key is thrown away:
# nothing else can be signed with it later.
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout "$tmp/ca.key" -out "$dir/ca.crt" -days 825 -subj "/CN=Portal compose CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

for svc in etcd redis nats; do
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$dir/$svc.key" -out "$tmp/$svc.csr" -subj "/CN=$svc" 2>/dev/null
  printf 'subjectAltName=DNS:%s,DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature\nbasicConstraints=critical,CA:FALSE\n' "$svc" >"$tmp/$svc.ext"
  openssl x509 -req -in "$tmp/$svc.csr" -CA "$dir/ca.crt" -CAkey "$tmp/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
    -out "$dir/$svc.crt" -days 825 -extfile "$tmp/$svc.ext" 2>/dev/null
done

pw() { openssl rand -hex 24; }
etcd_root=$(pw) etcd_portal=$(pw) redis_user=$(pw) redis_system=$(pw) redis_web=$(pw) nats=$(pw)

# One line per service: redisx.ACLRules(service) (internal/redisx/dial.go;
# deploy/helm/check's TestGenCerts fails when the two differ).
acl() { echo "resetkeys ~portal:$1:* resetchannels -@all +@read +@write +@keyspace +@connection +@transaction +@scripting -@dangerous"; }
{
  echo "user default off"
  echo "user health on nopass resetkeys resetchannels -@all +ping"
  echo "user portal-user on >$redis_user $(acl user)"
  echo "user portal-system on >$redis_system $(acl system)"
  echo "user portal-web on >$redis_web $(acl web)"
} >"$dir/users.acl"

cat >"$dir/nats.conf" <<CONF
port: 4222
http_port: 8222
jetstream { store_dir: "/data" }
tls {
  cert_file: "/certs/nats.crt"
  key_file: "/certs/nats.key"
  ca_file: "/certs/ca.crt"
}
authorization {
  users: [ { user: "portal", password: "$nats" } ]
}
CONF

chmod 755 "$dir"
chmod 644 "$dir"/*
{
  echo "# Appended by deploy/gen-certs.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ)."
  echo "PORTAL_ETCD_ROOT_PASSWORD='$etcd_root'"
  echo "PORTAL_ETCD_PASSWORD='$etcd_portal'"
  echo "PORTAL_REDIS_USER_PASSWORD='$redis_user'"
  echo "PORTAL_REDIS_SYSTEM_PASSWORD='$redis_system'"
  echo "PORTAL_REDIS_WEB_PASSWORD='$redis_web'"
  echo "PORTAL_NATS_PASSWORD='$nats'"
} >>"$env_file"

echo "gen-certs.sh: wrote $dir (CA, etcd, Redis and NATS certificates, users.acl, nats.conf) and the backend passwords into $env_file."
