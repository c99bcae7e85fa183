package check

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

const deployDir = "../.."

// genCerts runs gen-keys.sh and gen-certs.sh into a temporary folder and
// returns it: .env and certs/.
func genCerts(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	env := filepath.Join(dir, ".env")
	for _, script := range []string{"gen-keys.sh", "gen-certs.sh"} {
		cmd := exec.Command("bash", filepath.Join(deployDir, script), env)
		cmd.Env = append(os.Environ(), "ENV_FILE="+env, "CERTS_DIR="+filepath.Join(dir, "certs"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", script, err, out)
		}
	}
	return dir
}

// dotenv reads KEY='value' lines.
func dotenv(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
			vars[k] = strings.Trim(v, "'")
		}
	}
	return vars
}

// strs returns every string inside v.
func strs(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			out = append(out, strs(e)...)
		}
		return out
	case map[string]any:
		var out []string
		for _, e := range v {
			out = append(out, strs(e)...)
		}
		return out
	}
	return nil
}

var (
	certPath = regexp.MustCompile(`/certs/[A-Za-z0-9_.-]+`)
	envRef   = regexp.MustCompile(`\$\{([A-Z0-9_]+)`)
)

// TestCompose: compose.yaml, as far as it can be checked without a Docker
// engine: every ${VAR} is one that gen-keys.sh or gen-certs.sh writes;
// every file a service names under /certs/ (environment, command,
// healthcheck, nats.conf) is mounted into it from a file gen-certs.sh
// makes; Portal's services get the CA and no key, and reach every backend
// over TLS with credentials; each server certificate is valid for its
// service's name.
func TestCompose(t *testing.T) {
	dir := genCerts(t)
	vars := dotenv(t, filepath.Join(dir, ".env"))
	raw, err := os.ReadFile(filepath.Join(deployDir, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range envRef.FindAllStringSubmatch(string(raw), -1) {
		if vars[m[1]] == "" {
			t.Errorf("compose.yaml uses ${%s}, which the scripts do not write", m[1])
		}
	}
	var doc struct {
		Services map[string]map[string]any `json:"services"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"etcd", "redis", "nats", "config-init", "web", "user", "system"} {
		if doc.Services[name] == nil {
			t.Fatalf("compose.yaml has no service %s", name)
		}
	}
	for name, svc := range doc.Services {
		mounts := map[string]string{} // target -> source
		for _, v := range strs(svc["volumes"]) {
			parts := strings.Split(v, ":")
			if len(parts) < 2 || !strings.HasPrefix(parts[0], ".") {
				continue
			}
			mounts[parts[1]] = parts[0]
			src := filepath.Join(deployDir, parts[0])
			if rest, ok := strings.CutPrefix(parts[0], "./certs/"); ok {
				src = filepath.Join(dir, "certs", rest)
			}
			if _, err := os.Stat(src); err != nil {
				t.Errorf("%s mounts %s, which does not exist after the scripts ran", name, parts[0])
			}
		}
		var used []string
		for _, key := range []string{"environment", "command", "healthcheck"} {
			for _, s := range strs(svc[key]) {
				used = append(used, certPath.FindAllString(s, -1)...)
			}
		}
		if name == "nats" {
			conf, err := os.ReadFile(filepath.Join(dir, "certs", "nats.conf"))
			if err != nil {
				t.Fatal(err)
			}
			used = append(used, certPath.FindAllString(string(conf), -1)...)
		}
		for _, p := range used {
			if mounts[p] == "" {
				t.Errorf("%s names %s, which is not mounted into it", name, p)
			}
		}
		if name == "web" || name == "user" || name == "system" {
			for target := range mounts {
				if strings.HasSuffix(target, ".key") {
					t.Errorf("%s is given the key %s", name, target)
				}
			}
			env, _ := svc["environment"].(map[string]any)
			for _, key := range []string{"MICRO_REGISTRY_ADDRESS", "MICRO_BROKER_ADDRESS", map[bool]string{true: "PORTAL_CACHE_ADDRESS", false: "MICRO_STORE_ADDRESS"}[name == "web"]} {
				v, _ := env[key].(string)
				if !strings.HasPrefix(v, "https://") && !strings.HasPrefix(v, "tls://") && !strings.HasPrefix(v, "rediss://") {
					t.Errorf("%s: %s=%q is not TLS", name, key, v)
				}
				if key != "MICRO_REGISTRY_ADDRESS" && !strings.Contains(v, "@") {
					t.Errorf("%s: %s=%q has no credentials", name, key, v)
				}
			}
			if u, _ := env["MICRO_STORE_ADDRESS"].(string); u != "" && !strings.HasPrefix(u, "rediss://portal-"+name+":") {
				t.Errorf("%s: store address %q is not its own Redis user", name, u)
			}
			for _, key := range []string{"PORTAL_ETCD_CA_FILE", "PORTAL_REDIS_CA_FILE", "PORTAL_NATS_CA_FILE", "ETCD_PASSWORD"} {
				if env[key] == nil {
					t.Errorf("%s: no %s", name, key)
				}
			}
		}
	}
	ca := readCert(t, filepath.Join(dir, "certs", "ca.crt"))
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, svc := range []string{"etcd", "redis", "nats"} {
		c := readCert(t, filepath.Join(dir, "certs", svc+".crt"))
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, DNSName: svc}); err != nil {
			t.Errorf("%s's certificate: %v", svc, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "certs", "ca.key")); err == nil {
		t.Error("gen-certs.sh kept the CA's key")
	}
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// aclRules evaluates redisx.ACLRules(name) from its source
// (internal/redisx/dial.go): a concatenation of string literals and name.
func aclRules(t *testing.T, name string) string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../../../internal/redisx/dial.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var eval func(e ast.Expr) string
	eval = func(e ast.Expr) string {
		switch e := e.(type) {
		case *ast.BinaryExpr:
			return eval(e.X) + eval(e.Y)
		case *ast.BasicLit:
			s, err := strconv.Unquote(e.Value)
			if err != nil {
				t.Fatal(err)
			}
			return s
		case *ast.Ident:
			return name
		}
		t.Fatalf("redisx.ACLRules: unexpected %T", e)
		return ""
	}
	for _, d := range f.Decls {
		if fn, ok := d.(*ast.FuncDecl); ok && fn.Name.Name == "ACLRules" {
			ret := fn.Body.List[len(fn.Body.List)-1].(*ast.ReturnStmt)
			return eval(ret.Results[0])
		}
	}
	t.Fatal("no redisx.ACLRules")
	return ""
}

// TestGenCertsACL: users.acl gives each service the rules of
// redisx.ACLRules and the password in .env, and turns the default user off.
func TestGenCertsACL(t *testing.T) {
	dir := genCerts(t)
	vars := dotenv(t, filepath.Join(dir, ".env"))
	b, err := os.ReadFile(filepath.Join(dir, "certs", "users.acl"))
	if err != nil {
		t.Fatal(err)
	}
	acl := string(b)
	if !strings.Contains(acl, "user default off\n") {
		t.Error("users.acl leaves the default user on")
	}
	for _, svc := range []string{"user", "system", "web"} {
		want := fmt.Sprintf("user portal-%s on >%s %s\n", svc, vars["PORTAL_REDIS_"+strings.ToUpper(svc)+"_PASSWORD"], aclRules(t, svc))
		if !strings.Contains(acl, want) {
			t.Errorf("users.acl has no line %q", want)
		}
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func need(t *testing.T, bins ...string) {
	t.Helper()
	for _, b := range bins {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s is not installed (make test installs it: scripts/deps.sh)", b)
		}
	}
}

// TestConfigInit runs config-init.sh as compose runs it, against a real etcd
// with gen-certs.sh's certificate: it turns authentication on and writes the
// config, a second run leaves it, and then etcd refuses a client without
// the password or with a wrong one.
func TestConfigInit(t *testing.T) {
	need(t, "etcd", "curl", "sh")
	dir := genCerts(t)
	vars := dotenv(t, filepath.Join(dir, ".env"))
	certs := filepath.Join(dir, "certs")
	client, peer := freePort(t), freePort(t)
	etcd := exec.Command("etcd", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", "https://127.0.0.1:"+client, "--advertise-client-urls", "https://127.0.0.1:"+client,
		"--listen-peer-urls", "http://127.0.0.1:"+peer, "--initial-advertise-peer-urls", "http://127.0.0.1:"+peer,
		"--initial-cluster", "default=http://127.0.0.1:"+peer, "--listen-metrics-urls", "",
		"--cert-file", filepath.Join(certs, "etcd.crt"), "--key-file", filepath.Join(certs, "etcd.key"))
	if err := etcd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { etcd.Process.Kill(); etcd.Wait() })
	endpoint := "https://localhost:" + client
	run := func(user, password string) (string, error) {
		cmd := exec.Command("sh", "../portal/files/config-init.sh")
		cmd.Env = append(os.Environ(), "ETCD_ENDPOINT="+endpoint, "ETCD_CA_FILE="+filepath.Join(certs, "ca.crt"),
			"ETCD_USERNAME="+user, "ETCD_PASSWORD="+password, "ETCD_ROOT_PASSWORD="+vars["PORTAL_ETCD_ROOT_PASSWORD"],
			"CONFIG_FILE=../portal/files/portal.yaml", "TRIES=60")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// The script waits for etcd itself (TRIES, two seconds apart).
	out, err := run("portal", vars["PORTAL_ETCD_PASSWORD"])
	if err != nil || !strings.Contains(out, "authentication on") || !strings.Contains(out, "wrote") {
		t.Fatalf("first run: %v\n%s", err, out)
	}
	if out, err := run("portal", vars["PORTAL_ETCD_PASSWORD"]); err != nil || !strings.Contains(out, "already set") {
		t.Fatalf("second run: %v\n%s", err, out)
	}
	if out, err := run("portal", "wrong"); err == nil {
		t.Fatalf("a wrong password passed:\n%s", out)
	}
	read := exec.Command("curl", "-sS", "--cacert", filepath.Join(certs, "ca.crt"), "-d", `{"key":"L21pY3JvL2NvbmZpZy9wb3J0YWw="}`, endpoint+"/v3/kv/range")
	b, err := read.CombinedOutput()
	if err != nil || !strings.Contains(string(b), "user name is empty") {
		t.Fatalf("a read without a user: %v %s", err, b)
	}
}

// TestRedisACL starts redis-server as compose does (TLS only, users.acl)
// and checks with redis-cli that portal-user reaches its own keys only and
// that the default user is off.
func TestRedisACL(t *testing.T) {
	need(t, "redis-server", "redis-cli")
	dir := genCerts(t)
	vars := dotenv(t, filepath.Join(dir, ".env"))
	certs := filepath.Join(dir, "certs")
	port := freePort(t)
	srv := exec.Command("redis-server", "--port", "0", "--tls-port", port, "--bind", "127.0.0.1", "--save", "", "--dir", dir,
		"--tls-cert-file", filepath.Join(certs, "redis.crt"), "--tls-key-file", filepath.Join(certs, "redis.key"),
		"--tls-ca-cert-file", filepath.Join(certs, "ca.crt"), "--tls-auth-clients", "no", "--aclfile", filepath.Join(certs, "users.acl"))
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	cli := func(user, pass string, args ...string) string {
		base := []string{"--tls", "--cacert", filepath.Join(certs, "ca.crt"), "--sni", "redis", "-h", "127.0.0.1", "-p", port, "--no-auth-warning"}
		if user != "" {
			base = append(base, "--user", user, "--pass", pass)
		}
		out, _ := exec.Command("redis-cli", append(base, args...)...).CombinedOutput()
		return strings.TrimSpace(string(out))
	}
	// Poll until the server answers the health user's PING (the compose healthcheck).
	for i := 0; cli("health", "unused", "ping") != "PONG"; i++ {
		if i == 300 {
			t.Fatalf("redis-server never answered: %s", cli("health", "unused", "ping"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	pw := vars["PORTAL_REDIS_USER_PASSWORD"]
	if got := cli("portal-user", pw, "set", "portal:user:k", "v"); got != "OK" {
		t.Errorf("portal-user on its own key: %s", got)
	}
	if got := cli("portal-user", pw, "get", "portal:system:k"); !strings.Contains(got, "NOPERM") {
		t.Errorf("portal-user on system's key: %s", got)
	}
	if got := cli("portal-user", "wrong", "get", "portal:user:k"); !strings.Contains(got, "WRONGPASS") {
		t.Errorf("a wrong password: %s", got)
	}
	if got := cli("", "", "get", "portal:user:k"); !strings.Contains(got, "NOAUTH") {
		t.Errorf("the default user: %s", got)
	}
	if got := cli("health", "unused", "get", "portal:user:k"); !strings.Contains(got, "NOPERM") {
		t.Errorf("health reads data: %s", got)
	}
}

// TestNATSConf starts nats-server with gen-certs.sh's nats.conf (its
// /certs/ and /data paths moved to the test's folder) and reads the INFO
// line every client gets first: TLS and a user are required.
func TestNATSConf(t *testing.T) {
	need(t, "nats-server")
	dir := genCerts(t)
	certs := filepath.Join(dir, "certs")
	conf, err := os.ReadFile(filepath.Join(certs, "nats.conf"))
	if err != nil {
		t.Fatal(err)
	}
	port, monitor := freePort(t), freePort(t)
	s := strings.NewReplacer("/certs/", certs+"/", `"/data"`, strconv.Quote(filepath.Join(dir, "js")),
		"port: 4222", "port: "+port, "http_port: 8222", `http: "127.0.0.1:`+monitor+`"`).Replace(string(conf))
	path := filepath.Join(dir, "nats-test.conf")
	if err := os.WriteFile(path, []byte(s+"\nhost: 127.0.0.1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := exec.Command("nats-server", "-c", path)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	var conn net.Conn
	for i := 0; ; i++ {
		if conn, err = net.Dial("tcp", "127.0.0.1:"+port); err == nil {
			break
		}
		if i == 300 {
			t.Fatalf("nats-server never listened: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	info := make([]byte, 4096)
	n, err := conn.Read(info)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"tls_required":true`, `"auth_required":true`} {
		if !strings.Contains(string(info[:n]), want) {
			t.Errorf("INFO has no %s: %s", want, info[:n])
		}
	}
}
