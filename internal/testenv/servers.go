package testenv

// Real etcd, Redis and NATS servers for integration tests, from Debian's
// packages (scripts/deps.sh installs them): each on free loopback ports, in
// its own temporary directory, polled until it answers, and stopped when the
// test ends. Stop and Start restart one on the same ports with the same data:
// the test holds the ports (FreePort) for its whole life.

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

const (
	// readyTimeout bounds how long a server may take to answer after start.
	readyTimeout = 20 * time.Second
	// readyPoll is how often readiness is probed.
	readyPoll = 50 * time.Millisecond
	// stopGrace is how long a server has to exit after SIGTERM before SIGKILL.
	stopGrace = 5 * time.Second
	// logTailLines is how much of a server's output a failure message quotes.
	logTailLines = 50
)

// debianPackage names the Debian package that ships each server binary.
var debianPackage = map[string]string{
	"etcd":         "etcd-server",
	"redis-server": "redis-server",
}

// binaryDirs are searched after $PATH: Debian puts some servers in
// /usr/sbin, which is not on a normal user's PATH.
var binaryDirs = []string{"/usr/bin", "/usr/sbin", "/usr/local/bin"}

// findBinary returns the path of the first of names found on $PATH or in
// /usr/bin, /usr/sbin or /usr/local/bin.
func findBinary(names ...string) (string, bool) {
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p, true
		}
		for _, dir := range binaryDirs {
			p := filepath.Join(dir, name)
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
				return p, true
			}
		}
	}
	return "", false
}

// Require skips the test when binary (etcd, redis-server) is not
// installed, or fails it when PORTAL_REQUIRE_SERVERS=1, as CI sets.
func Require(t testing.TB, binary string) {
	t.Helper()
	if _, ok := findBinary(binary); ok {
		return
	}
	pkg := debianPackage[binary]
	if pkg == "" {
		pkg = binary
	}
	why := fmt.Sprintf("%s not found (on $PATH, /usr/bin, /usr/sbin, /usr/local/bin): "+
		"install Debian's %s (`make test` does, through scripts/deps.sh; "+
		"or: sudo apt-get install %s)", binary, pkg, pkg)
	if os.Getenv("PORTAL_REQUIRE_SERVERS") == "1" {
		t.Fatalf("%s (PORTAL_REQUIRE_SERVERS=1)", why)
	}
	t.Skipf("\n########################################\n"+
		"## SKIPPED: %s\n"+
		"########################################", why)
}

// FreePort returns a TCP port on 127.0.0.1 that stays reserved for the
// test until it ends: the test holds a socket bound to it with SO_REUSEADDR
// but never listening. Linux then gives the port to no one who asks for a
// free one (bind to port 0, the source port of a connection), while a server
// that binds it by number with SO_REUSEADDR, as Go's net.Listen, etcd, NATS
// and redis-server all do, may bind and listen on it: once, and again after
// a restart. So a server stopped by a test gets its port back, and no other
// package's test can take the port in between.
func FreePort(t testing.TB) int {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("reserve a port: socket: %v", err)
	}
	port, err := reserve(fd)
	if err != nil {
		syscall.Close(fd)
		t.Fatalf("reserve a port: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	return port
}

// reserve binds fd, with SO_REUSEADDR, to a free port on 127.0.0.1.
func reserve(fd int) (int, error) {
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		return 0, fmt.Errorf("SO_REUSEADDR: %w", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return 0, fmt.Errorf("bind: %w", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		return 0, fmt.Errorf("getsockname: %w", err)
	}
	return sa.(*syscall.SockaddrInet4).Port, nil
}

// process is one external server: how to run it, and its current run.
type process struct {
	name    string   // for messages: "etcd", "redis", "nats"
	bin     string   // absolute path of the binary
	args    []string // the same on every start
	env     []string // the child's environment
	logPath string   // stdout and stderr of every run, appended
	ready   func() error

	cmd     *exec.Cmd
	logFile *os.File
	done    chan struct{} // closed when cmd has been waited for
	waitErr error         // cmd.Wait's result, set before done is closed
}

// start runs the server and waits until ready answers nil; on failure it
// kills the server and fails the test with the end of the server's output.
func (p *process) start(t testing.TB) {
	t.Helper()
	if p.running() {
		t.Fatalf("%s: Start while it is running", p.name)
	}
	if p.cmd != nil { // it exited by itself
		p.release()
	}
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatalf("%s: open log: %v", p.name, err)
	}
	fmt.Fprintf(f, "=== testenv: %s %s\n", p.bin, strings.Join(p.args, " "))
	var out io.Writer = f
	if os.Getenv("PORTAL_TEST_LOG") == "1" {
		out = io.MultiWriter(f, os.Stderr)
	}
	// Not CommandContext: the server must outlive any one context, and
	// stop only through Stop (or the test's cleanup).
	cmd := command(p.bin, p.args, p.env, filepath.Dir(p.logPath), out)
	began := time.Now()
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("%s: start %s: %v", p.name, p.bin, err)
	}
	p.cmd, p.logFile, p.done, p.waitErr = cmd, f, make(chan struct{}), nil
	go func(done chan struct{}) {
		p.waitErr = cmd.Wait()
		close(done)
	}(p.done)

	deadline := time.NewTimer(readyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	var last error
	for {
		if last = p.ready(); last == nil {
			t.Logf("%s: ready in %v (pid %d)", p.name, time.Since(began).Round(time.Millisecond), cmd.Process.Pid)
			return
		}
		select {
		case <-p.done:
			err := p.waitErr
			p.release()
			t.Fatalf("%s exited before it was ready: %v (last probe: %v)\n%s", p.name, err, last, p.logTail())
		case <-deadline.C:
			p.kill(t)
			t.Fatalf("%s not ready after %v: %v\n%s", p.name, readyTimeout, last, p.logTail())
		case <-tick.C:
		}
	}
}

// running tells whether the server's process has been started and not yet
// reaped.
func (p *process) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// signal sends sig to the server's whole process group.
func (p *process) signal(sig syscall.Signal) error {
	return syscall.Kill(-p.cmd.Process.Pid, sig)
}

// stop sends SIGTERM (SIGKILL after stopGrace) and waits for the exit. It
// does nothing when the server is not running.
func (p *process) stop(t testing.TB) {
	t.Helper()
	if p.cmd == nil {
		return
	}
	select {
	case <-p.done:
		// A server that died mid-test is the cause of whatever failed:
		// show why it died.
		t.Logf("%s had already exited: %v\n%s", p.name, p.waitErr, p.logTail())
		p.release()
		return
	default:
	}
	_ = p.signal(syscall.SIGTERM)
	// A paused (SIGSTOPped) server only acts on SIGTERM once continued.
	_ = p.signal(syscall.SIGCONT)
	select {
	case <-p.done:
		p.release()
	case <-time.After(stopGrace):
		t.Logf("%s ignored SIGTERM for %v: SIGKILL", p.name, stopGrace)
		p.kill(t)
	}
}

// kill SIGKILLs the process group and waits for the exit.
func (p *process) kill(t testing.TB) {
	t.Helper()
	_ = p.signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(stopGrace):
		t.Errorf("%s (pid %d) still running after SIGKILL", p.name, p.cmd.Process.Pid)
	}
	p.release()
}

// release forgets the finished run and closes its log file.
func (p *process) release() {
	if p.logFile != nil {
		p.logFile.Close()
	}
	p.cmd, p.logFile = nil, nil
}

// pause and resume stop and continue the process group.
func (p *process) pause(t testing.TB) {
	t.Helper()
	if !p.running() {
		t.Fatalf("%s: Pause while it is not running", p.name)
	}
	if err := p.signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("%s: SIGSTOP: %v", p.name, err)
	}
}

func (p *process) resume(t testing.TB) {
	t.Helper()
	if !p.running() {
		t.Fatalf("%s: Resume while it is not running", p.name)
	}
	if err := p.signal(syscall.SIGCONT); err != nil {
		t.Fatalf("%s: SIGCONT: %v", p.name, err)
	}
}

// logTail returns the last logTailLines lines of the server's output.
func (p *process) logTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(no output: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > logTailLines {
		lines = lines[len(lines)-logTailLines:]
	}
	return fmt.Sprintf("--- last %d lines of %s ---\n%s", len(lines), p.logPath, strings.Join(lines, "\n"))
}

// setParentDeathSignal asks the kernel to SIGKILL the server if the test
// binary dies without running its cleanups (a go test -timeout panic,
// Ctrl-C: the server is in its own process group, so the terminal's SIGINT
// does not reach it). The field exists on Linux only, hence reflection, so
// the package still builds elsewhere.
func setParentDeathSignal(a *syscall.SysProcAttr) {
	if f := reflect.ValueOf(a).Elem().FieldByName("Pdeathsig"); f.IsValid() && f.CanSet() {
		f.Set(reflect.ValueOf(syscall.SIGKILL))
	}
}

// serverEnv is the environment servers run with: the test's, less
// variables that would change their configuration behind the flags.
func serverEnv(dropPrefix string, extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if dropPrefix != "" && strings.HasPrefix(kv, dropPrefix) {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// newProcess resolves binary (skipping or failing the test, see Require) and
// puts the server's log in dir.
func newProcess(t testing.TB, name, binary, dir string) *process {
	t.Helper()
	Require(t, binary)
	bin, _ := findBinary(binary)
	return &process{name: name, bin: bin, logPath: filepath.Join(dir, name+".log")}
}

// Etcd is a single-member etcd cluster on loopback.
type Etcd struct {
	// ClientURL is http://127.0.0.1:<port>.
	ClientURL string
	// Addr is 127.0.0.1:<port>, the same port as ClientURL.
	Addr string
	// DataDir is etcd's data directory; it survives Stop and Start.
	DataDir string
	p       *process
	http    *http.Client // gateway calls
	probe   *http.Client // health probes
	// CAFile, with TLS on, is the CA of etcd's certificate; CertFile and
	// KeyFile, when etcd requires client certificates, are one for Portal.
	CAFile, CertFile, KeyFile string
	// User and Password, with authentication on, are a user whose role
	// may read and write the prefix /micro/ only, as Portal's services
	// need.
	User, Password string
	// root, with authentication on, is a client as etcd's root user,
	// which Put, Get and Keys use instead of the gateway.
	root *clientv3.Client
}

// StartEtcd runs etcd on free loopback ports with its data in a temporary
// directory, waits until /health answers true, and stops it when the test
// ends. It skips or fails the test like Require when etcd is not installed.
func StartEtcd(t testing.TB) *Etcd {
	t.Helper()
	return startEtcd(t, EtcdOptions{})
}

// startEtcd is StartEtcd with o's TLS and authentication.
func startEtcd(t testing.TB, o EtcdOptions) *Etcd {
	t.Helper()
	dir := t.TempDir()
	p := newProcess(t, "etcd", "etcd", dir)
	client := FreePort(t)
	peer := FreePort(t)
	clientURL := fmt.Sprintf("%s://127.0.0.1:%d", o.scheme(), client)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peer)
	e := &Etcd{
		ClientURL: clientURL,
		Addr:      fmt.Sprintf("127.0.0.1:%d", client),
		// A directory etcd creates itself: it wants mode 0700.
		DataDir: filepath.Join(dir, "data"),
		p:       p,
	}
	// No keep-alives: a connection kept from before Stop would fail the
	// first request after Start. No proxy either.
	tr := &http.Transport{DisableKeepAlives: true, TLSClientConfig: o.clientTLS(t)}
	e.http = &http.Client{Transport: tr, Timeout: 5 * time.Second}
	e.probe = &http.Client{Transport: tr, Timeout: time.Second}
	p.args = []string{
		"--name", "test",
		"--data-dir", e.DataDir,
		"--listen-client-urls", clientURL,
		"--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL,
		"--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "test=" + peerURL,
		// Both are etcd 3.4's defaults, stated so that nothing listens
		// beyond the two loopback ports above.
		"--listen-metrics-urls", "",
		"--enable-pprof=false",
		// A single member elects itself after one election timeout on
		// every start: 100 ms instead of 1 s makes a restart take
		// ~0.2 s rather than ~1.4 s. With no peers, the short
		// heartbeat costs nothing.
		"--heartbeat-interval", "10",
		"--election-timeout", "100",
	}
	p.args = append(p.args, o.args(t)...)
	// ETCD_* variables would set flags too: drop them. etcd refuses to
	// run on architectures other than amd64 (arm64 in later releases)
	// without ETCD_UNSUPPORTED_ARCH naming the architecture.
	var extra []string
	if runtime.GOARCH != "amd64" {
		extra = append(extra, "ETCD_UNSUPPORTED_ARCH="+runtime.GOARCH)
	}
	p.env = serverEnv("ETCD_", extra...)
	p.ready = e.health
	p.start(t)
	t.Cleanup(func() { p.stop(t) })
	e.secure(t, o)
	return e
}

// health probes GET /health once.
func (e *Etcd) health() error {
	resp, err := e.probe.Get(e.ClientURL + "/health")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var h struct {
		Health string `json:"health"`
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err := json.Unmarshal(body, &h); err != nil || h.Health != "true" {
		return fmt.Errorf("GET /health: %s %s", resp.Status, bytes.TrimSpace(body))
	}
	return nil
}

// Stop stops etcd (SIGTERM, SIGKILL after 5 s) and waits for it to exit;
// it does nothing when etcd is not running.
func (e *Etcd) Stop(t testing.TB) {
	t.Helper()
	e.p.stop(t)
}

// Start starts a stopped etcd again on the same ports with the same data,
// and waits until it is healthy.
func (e *Etcd) Start(t testing.TB) {
	t.Helper()
	e.p.start(t)
}

// Put sets key to value through etcd's v3 HTTP/JSON gateway.
func (e *Etcd) Put(t testing.TB, key, value string) {
	t.Helper()
	if e.root != nil {
		e.rootPut(t, key, value)
		return
	}
	e.call(t, "/v3/kv/put", map[string]string{
		"key":   base64.StdEncoding.EncodeToString([]byte(key)),
		"value": base64.StdEncoding.EncodeToString([]byte(value)),
	}, nil)
}

// Get returns key's value through etcd's v3 HTTP/JSON gateway, or "" when
// the key does not exist.
func (e *Etcd) Get(t testing.TB, key string) string {
	t.Helper()
	if e.root != nil {
		return e.rootGet(t, key)
	}
	var resp struct {
		Kvs []struct {
			Value string `json:"value"`
		} `json:"kvs"`
	}
	e.call(t, "/v3/kv/range", map[string]string{
		"key": base64.StdEncoding.EncodeToString([]byte(key)),
	}, &resp)
	if len(resp.Kvs) == 0 {
		return ""
	}
	v, err := base64.StdEncoding.DecodeString(resp.Kvs[0].Value)
	if err != nil {
		t.Fatalf("etcd: value of %q: %v", key, err)
	}
	return string(v)
}

// call POSTs req as JSON to the gateway path and decodes the answer into
// resp unless it is nil.
func (e *Etcd) call(t testing.TB, path string, req, resp any) {
	t.Helper()
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatalf("etcd %s: %v", path, err)
	}
	r, err := e.http.Post(e.ClientURL+path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("etcd %s: %v", path, err)
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatalf("etcd %s: read answer: %v", path, err)
	}
	if r.StatusCode != http.StatusOK {
		t.Fatalf("etcd %s: %s %s", path, r.Status, bytes.TrimSpace(b))
	}
	if resp != nil {
		if err := json.Unmarshal(b, resp); err != nil {
			t.Fatalf("etcd %s: %v in %s", path, err, b)
		}
	}
}

// Redis is a Redis server on loopback that keeps its data across Stop and
// Start (an append-only file, fsynced on every write).
type Redis struct {
	// Addr is 127.0.0.1:<port>.
	Addr string
	p    *process
	// tls and admin, when set, are how Do reaches a secure Redis: TLS
	// with the test's CA, and the default user's password.
	tls   *tls.Config
	admin string
	// CAFile, with TLS on, is the CA of Redis's certificate. Users, with
	// ACL users on, are each service's Redis user, by service.
	CAFile string
	Users  map[string]RedisUser
}

// StartRedis runs redis-server on a free loopback port with its data in a
// temporary directory, waits until it answers PING, and stops it when the
// test ends. It skips or fails the test like Require when redis-server is
// not installed.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	return startRedis(t, RedisOptions{})
}

// startRedis is StartRedis with o's TLS and users.
func startRedis(t testing.TB, o RedisOptions) *Redis {
	t.Helper()
	dir := t.TempDir()
	p := newProcess(t, "redis", "redis-server", dir)
	port := FreePort(t)
	r := &Redis{Addr: fmt.Sprintf("127.0.0.1:%d", port), p: p}
	p.args = []string{
		portFlag(o), strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--protected-mode", "yes",
		"--dir", dir,
		// No RDB snapshots; every write goes to the append-only file
		// before it is acknowledged, so Stop and Start (even a SIGKILL)
		// keep the data.
		"--save", "",
		"--appendonly", "yes",
		"--appendfsync", "always",
		"--daemonize", "no",
	}
	p.args = append(p.args, r.secure(t, o)...)
	p.env = serverEnv("")
	p.ready = r.ping
	p.start(t)
	t.Cleanup(func() { p.stop(t) })
	return r
}

// ping sends one PING and wants +PONG (while Redis loads its data it
// answers -LOADING instead).
func (r *Redis) ping() error {
	reply, err := r.Do(time.Second, "PING")
	if err != nil {
		return err
	}
	if reply != "+PONG" {
		return fmt.Errorf("PING: %q", reply)
	}
	return nil
}

// Stop stops Redis (SIGTERM, SIGKILL after 5 s) and waits for it to exit;
// it does nothing when Redis is not running.
func (r *Redis) Stop(t testing.TB) {
	t.Helper()
	r.p.stop(t)
}

// Start starts a stopped Redis again on the same port with the same data,
// and waits until it answers PING.
func (r *Redis) Start(t testing.TB) {
	t.Helper()
	r.p.start(t)
}

// Pause freezes Redis with SIGSTOP: the kernel still accepts connections on
// its port, but nothing answers until Resume.
func (r *Redis) Pause(t testing.TB) {
	t.Helper()
	r.p.pause(t)
}

// Resume continues a paused Redis with SIGCONT.
func (r *Redis) Resume(t testing.TB) {
	t.Helper()
	r.p.resume(t)
}

// RedisDo sends one command to the Redis server at addr over a fresh
// connection, speaking RESP, and returns the first line of the reply without
// its CRLF (+OK, -ERR ..., :1, $-1) or, for a bulk string, its contents. The
// whole exchange must finish within timeout.
func RedisDo(addr string, timeout time.Duration, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return "", err
	}
	return redisRoundTrip(conn, bufio.NewReader(conn), args...)
}

// redisRoundTrip sends one command on conn and reads its reply from br,
// as RedisDo returns it.
func redisRoundTrip(conn net.Conn, br *bufio.Reader, args ...string) (string, error) {
	var req bytes.Buffer
	fmt.Fprintf(&req, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&req, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write(req.Bytes()); err != nil {
		return "", err
	}
	line, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if !strings.HasPrefix(line, "$") || line == "$-1" {
		return line, nil
	}
	n, err := strconv.Atoi(line[1:])
	if err != nil || n < 0 {
		return "", fmt.Errorf("bad bulk length %q", line)
	}
	buf := make([]byte, n+2)
	if _, err := io.ReadFull(br, buf); err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// NATS is a NATS server with JetStream on loopback, its JetStream storage
// kept across Stop and Start.
type NATS struct {
	// URL is nats://127.0.0.1:<port>.
	URL string
	// Addr is 127.0.0.1:<port>.
	Addr string
	p    *process
	// CAFile, with TLS on, is the CA of the server's certificate; User and
	// Password, with authorization on, Portal's user, and NKeyFile the
	// seed of an NKey user.
	CAFile, User, Password, NKeyFile string
}

// StartNATS runs nats-server (built from the module go.mod pins: BuildNATS)
// with JetStream on a free loopback port, storage in a temporary directory
// and no HTTP monitor, waits until it greets a client with INFO, and stops
// it when the test ends.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	return startNATS(t, NATSOptions{})
}

// startNATS is StartNATS with o's TLS and users.
func startNATS(t testing.TB, o NATSOptions) *NATS {
	t.Helper()
	dir := t.TempDir()
	p := &process{name: "nats", bin: BuildNATS(t), logPath: filepath.Join(dir, "nats.log")}
	port := FreePort(t)
	n := &NATS{
		URL:  fmt.Sprintf("nats://127.0.0.1:%d", port),
		Addr: fmt.Sprintf("127.0.0.1:%d", port),
		p:    p,
	}
	p.args = []string{
		"-a", "127.0.0.1",
		"-p", strconv.Itoa(port),
		// The HTTP monitor is off by default; 0 keeps it so.
		"-m", "0",
		"-js",
		"-sd", filepath.Join(dir, "jetstream"),
	}
	p.args = append(p.args, n.secure(t, o, dir)...)
	p.env = serverEnv("")
	p.ready = func() error {
		_, err := NATSInfo(n.Addr, time.Second)
		return err
	}
	p.start(t)
	t.Cleanup(func() { p.stop(t) })
	return n
}

// Stop stops NATS (SIGTERM, SIGKILL after 5 s) and waits for it to exit; it
// does nothing when NATS is not running.
func (n *NATS) Stop(t testing.TB) {
	t.Helper()
	n.p.stop(t)
}

// Start starts a stopped NATS again on the same port with the same storage,
// and waits until it greets clients.
func (n *NATS) Start(t testing.TB) {
	t.Helper()
	n.p.start(t)
}

// NATSInfo connects to the NATS server at addr and returns the JSON of the
// INFO line it greets clients with, within timeout.
func NATSInfo(addr string, timeout time.Duration) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return "", err
	}
	info, ok := strings.CutPrefix(strings.TrimRight(line, "\r\n"), "INFO ")
	if !ok {
		return "", errors.New("greeting is not INFO: " + strconv.Quote(line))
	}
	return info, nil
}

// command prepares a test server or Portal process: its own process group
// (so a kill reaches its children), killed when the test binary dies, output
// to out.
func command(bin string, args, env []string, dir string, out io.Writer) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Dir = dir
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.WaitDelay = time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	setParentDeathSignal(cmd.SysProcAttr)
	return cmd
}
