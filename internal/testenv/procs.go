package testenv

// Portal's own binary as separate processes, for tests of the distributed
// mode: BuildPortal (build.go) shares one build of ./cmd/portal, StartProc
// runs it (or anything else) with exactly the environment a test gives, and
// PortalEnv builds that environment from the servers StartEtcd, StartNATS and
// StartRedis run.

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	pauth "github.com/portal-go/portal/internal/auth"
)

const (
	// procReadyTimeout bounds how long a process may take to log its ready
	// line.
	procReadyTimeout = 30 * time.Second
	// procStopGrace is how long a process has to exit after SIGTERM.
	procStopGrace = 10 * time.Second
)

// moduleRoot walks up from the working directory to the one holding go.mod.
func moduleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if fi, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil && fi.Mode().IsRegular() {
			return dir, nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("no go.mod in %s or above", wd)
		}
	}
}

// procSeq numbers processes, to tell their logs apart.
var procSeq atomic.Int64

// Proc is one running process started by StartProc.
type Proc struct {
	// Name tells the process apart in messages: the binary's base name, its
	// first argument and a sequence number ("portal-user-3").
	Name    string
	Pid     int
	logPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has been waited for
	waitErr error         // set before done is closed
}

// StartProc runs bin with args and an environment of PATH and HOME plus env
// (nothing else of the test's environment: no MICRO_* leaks in), its output
// in a log file in t.TempDir(), and waits until the log holds readyLine. It
// fails the test with the end of the log when the process exits first or
// does not get ready within 30 s. The process is killed when the test ends;
// if the test failed, the end of its log is logged first. With
// PORTAL_TEST_LOG=1 the output is echoed to stderr as well, each line
// prefixed with the process's name.
func StartProc(t testing.TB, bin string, args []string, env map[string]string, readyLine string) *Proc {
	t.Helper()
	name := filepath.Base(bin)
	if len(args) > 0 {
		name += "-" + args[0]
	}
	name = fmt.Sprintf("%s-%d", name, procSeq.Add(1))
	p := &Proc{Name: name, logPath: filepath.Join(t.TempDir(), name+".log")}

	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatalf("%s: open log: %v", name, err)
	}
	var out io.Writer = f
	if os.Getenv("PORTAL_TEST_LOG") == "1" {
		out = io.MultiWriter(f, &prefixWriter{prefix: "[" + name + "] ", w: os.Stderr})
	}
	cmd := command(bin, args, procEnv(env), filepath.Dir(p.logPath), out)
	began := time.Now()
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("%s: start %s: %v", name, bin, err)
	}
	p.cmd, p.Pid, p.done = cmd, cmd.Process.Pid, make(chan struct{})
	go func() {
		p.waitErr = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s (pid %d):\n%s", p.Name, p.Pid, p.Tail(logTailLines))
		}
		p.kill()
	})

	deadline := time.NewTimer(procReadyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for {
		if strings.Contains(p.Log(), readyLine) {
			t.Logf("%s: ready in %v (pid %d)", name, time.Since(began).Round(time.Millisecond), p.Pid)
			return p
		}
		select {
		case <-p.done:
			// The log may have got the line just before the exit.
			if strings.Contains(p.Log(), readyLine) {
				t.Fatalf("%s logged %q but exited at once: %v\n%s", name, readyLine, p.waitErr, p.Tail(logTailLines))
			}
			t.Fatalf("%s exited before it logged %q: %v\n%s", name, readyLine, p.waitErr, p.Tail(logTailLines))
		case <-deadline.C:
			p.kill()
			t.Fatalf("%s did not log %q within %v\n%s", name, readyLine, procReadyTimeout, p.Tail(logTailLines))
		case <-tick.C:
		}
	}
}

// procEnv is PATH and HOME from the test's environment, then env.
func procEnv(env map[string]string) []string {
	var out []string
	for _, k := range []string{"PATH", "HOME"} {
		if v, ok := os.LookupEnv(k); ok {
			if _, set := env[k]; !set {
				out = append(out, k+"="+v)
			}
		}
	}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// Running tells whether the process has not exited yet.
func (p *Proc) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL to the process's group and waits for the exit.
func (p *Proc) Kill(t testing.TB) {
	t.Helper()
	if !p.kill() {
		t.Errorf("%s (pid %d) still running 10s after SIGKILL", p.Name, p.Pid)
	}
}

func (p *Proc) kill() bool {
	_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
	select {
	case <-p.done:
		return true
	case <-time.After(procStopGrace):
		return false
	}
}

// Stop sends SIGTERM and waits up to 10 s for the exit (then SIGKILL, and
// the test fails). An exit status other than 0 is logged, not failed.
func (p *Proc) Stop(t testing.TB) {
	t.Helper()
	_ = syscall.Kill(-p.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
		if p.waitErr != nil {
			t.Logf("%s stopped: %v", p.Name, p.waitErr)
		}
	case <-time.After(procStopGrace):
		t.Errorf("%s ignored SIGTERM for %v: SIGKILL\n%s", p.Name, procStopGrace, p.Tail(logTailLines))
		p.kill()
	}
}

// ExitErr is how the process ended: nil for exit status 0. Only meaningful
// once Running is false.
func (p *Proc) ExitErr() error {
	select {
	case <-p.done:
		return p.waitErr
	default:
		return nil
	}
}

// Log returns everything the process has written so far.
func (p *Proc) Log() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return string(b)
}

// Tail returns the last n lines of the log, headed by its path.
func (p *Proc) Tail(n int) string {
	lines := strings.Split(strings.TrimRight(p.Log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return fmt.Sprintf("--- last %d lines of %s ---\n%s", len(lines), p.logPath, strings.Join(lines, "\n"))
}

// Problems returns the log's WARN and ERROR lines (slog text) stamped at or
// after since, headed by the process's name, or "" when there are none: what
// a test prints beside a failure to say what each process saw meanwhile.
func (p *Proc) Problems(since time.Time) string {
	since = since.Truncate(time.Millisecond) // slog's stamps are in milliseconds
	var out []string
	for _, line := range strings.Split(p.Log(), "\n") {
		stamped, ok := strings.CutPrefix(line, "time=")
		stamp, rest, _ := strings.Cut(stamped, " ")
		if !ok || !(strings.HasPrefix(rest, "level=WARN") || strings.HasPrefix(rest, "level=ERROR")) {
			continue
		}
		if at, err := time.Parse(time.RFC3339Nano, stamp); err == nil && !at.Before(since) {
			out = append(out, line)
		}
	}
	if len(out) == 0 {
		return ""
	}
	return fmt.Sprintf("--- %s: %d warnings and errors since %s ---\n%s", p.Name, len(out),
		since.UTC().Format("15:04:05.000"), strings.Join(out, "\n"))
}

// LogValue returns the value of key (unquoted) on the first slog text line
// whose msg is msg, or "" when there is none: LogValue("portal ready",
// "http") is the address the gateway serves on.
func (p *Proc) LogValue(msg, key string) string {
	want := "msg=" + msg
	if strings.ContainsAny(msg, " =\"") {
		want = fmt.Sprintf("msg=%q", msg)
	}
	for _, line := range strings.Split(p.Log(), "\n") {
		if !strings.Contains(line, want) {
			continue
		}
		_, rest, ok := strings.Cut(line, " "+key+"=")
		if !ok {
			continue
		}
		if strings.HasPrefix(rest, `"`) {
			var v string
			if _, err := fmt.Sscanf(rest, "%q", &v); err == nil {
				return v
			}
		}
		v, _, _ := strings.Cut(rest, " ")
		return v
	}
	return ""
}

// prefixWriter writes whole lines to w, each after prefix.
type prefixWriter struct {
	prefix string
	w      io.Writer
	mu     sync.Mutex
	buf    []byte
}

func (pw *prefixWriter) Write(b []byte) (int, error) {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	pw.buf = append(pw.buf, b...)
	for {
		i := bytes.IndexByte(pw.buf, '\n')
		if i < 0 {
			break
		}
		if _, err := fmt.Fprintf(pw.w, "%s%s", pw.prefix, pw.buf[:i+1]); err != nil {
			return len(b), nil // the echo is best effort
		}
		pw.buf = pw.buf[i+1:]
	}
	return len(b), nil
}

// PortalKeys are a token key pair as Portal's services take them in
// MICRO_AUTH_PUBLIC_KEY and MICRO_AUTH_PRIVATE_KEY (base64 of the PEM), and
// the gateway key every service shares (PORTAL_GATEWAY_KEY, base64).
type PortalKeys struct {
	Public, Private string
	Gateway         string
}

// NewPortalKeys generates a fresh key pair.
func NewPortalKeys(t testing.TB) PortalKeys {
	t.Helper()
	priv, pub, err := pauth.GenerateKeyPair()
	if err != nil {
		t.Fatalf("generate keys: %v", err)
	}
	gw := make([]byte, 32)
	if _, err := rand.Read(gw); err != nil {
		t.Fatalf("gateway key: %v", err)
	}
	return PortalKeys{
		Public:  base64.StdEncoding.EncodeToString(pub),
		Private: base64.StdEncoding.EncodeToString(priv),
		Gateway: base64.StdEncoding.EncodeToString(gw),
	}
}

// Cluster is what a distributed Portal's processes share: the registry and
// config center, the broker (and audit stream), the user and system store,
// and the token keys.
type Cluster struct {
	Etcd  *Etcd
	NATS  *NATS
	Redis *Redis // the user and system services' store; nil: the file store
	Keys  PortalKeys
	// Issuer, when set, is every service's PORTAL_ISSUER.
	Issuer string
}

// PortalEnv is the environment of `portal <service>` (web, user, system) in
// the cluster: etcd registry and config, NATS broker, gRPC on a free
// loopback port, the public key (the private key only for user), Redis as
// user's and system's store, NATS JetStream as the audit stream (the default
// with a NATS broker), the test admin password, and a data directory of its own.
// web listens on 127.0.0.1:0; LogValue("portal ready", "http") on its Proc
// tells the port. Registration TTL and interval are go-micro's as Portal
// sets them (10 s and 5 s).
func PortalEnv(t testing.TB, service string, c Cluster) map[string]string {
	t.Helper()
	env := map[string]string{
		"MICRO_REGISTRY":         "etcd",
		"MICRO_REGISTRY_ADDRESS": c.Etcd.Addr,
		"MICRO_BROKER":           "nats",
		"MICRO_BROKER_ADDRESS":   c.NATS.URL,
		"MICRO_CONFIG":           "etcd",
		"MICRO_SERVER_ADDRESS":   "127.0.0.1:0",
		"MICRO_AUTH_PUBLIC_KEY":  c.Keys.Public,
		"PORTAL_GATEWAY_KEY":     c.Keys.Gateway,
		"PORTAL_ADMIN_PASSWORD":  AdminPassword,
		"PORTAL_DATA_DIR":        t.TempDir(),
	}
	if c.Issuer != "" {
		env["PORTAL_ISSUER"] = c.Issuer
	}
	etcdEnv(env, c.Etcd)
	redisEnv(env, service, c.Redis)
	natsEnv(env, c.NATS)
	switch service {
	case "user", "system":
		if service == "user" {
			env["MICRO_AUTH_PRIVATE_KEY"] = c.Keys.Private
		}
		if c.Redis != nil {
			env["MICRO_STORE"] = "redis"
			env["MICRO_STORE_ADDRESS"] = c.Redis.URL(service)
		}
	case "web":
		env["PORTAL_HTTP_ADDRESS"] = "127.0.0.1:0"
	}
	return env
}

// Keys lists the keys under prefix through etcd's v3 HTTP/JSON gateway, in
// etcd's (byte) order.
func (e *Etcd) Keys(t testing.TB, prefix string) []string {
	t.Helper()
	if e.root != nil {
		return e.rootKeys(t, prefix)
	}
	var resp struct {
		Kvs []struct {
			Key string `json:"key"`
		} `json:"kvs"`
	}
	e.call(t, "/v3/kv/range", map[string]any{
		"key":       base64.StdEncoding.EncodeToString([]byte(prefix)),
		"range_end": base64.StdEncoding.EncodeToString(prefixEnd(prefix)),
		"keys_only": true,
	}, &resp)
	keys := make([]string, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		k, err := base64.StdEncoding.DecodeString(kv.Key)
		if err != nil {
			t.Fatalf("etcd: key under %q: %v", prefix, err)
		}
		keys = append(keys, string(k))
	}
	return keys
}

// prefixEnd is the range end that makes a range of all keys starting with
// prefix: prefix with its last byte below 0xff incremented (and what follows
// dropped); "\x00" (every key) when there is none.
func prefixEnd(prefix string) []byte {
	end := []byte(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return []byte{0}
}
