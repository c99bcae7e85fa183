package testenv

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestFindBinary(t *testing.T) {
	if _, ok := findBinary("no-such-binary-for-portal-tests"); ok {
		t.Fatal("found a binary that does not exist")
	}
	p, ok := findBinary("no-such-binary-for-portal-tests", "sh")
	if !ok || !strings.HasSuffix(p, "/sh") {
		t.Fatalf("findBinary(..., sh) = %q, %v", p, ok)
	}
}

func TestRequireMissing(t *testing.T) {
	for _, require := range []string{"", "1"} {
		t.Setenv("PORTAL_REQUIRE_SERVERS", require)
		ft := &fatalRecorder{TB: t}
		func() {
			defer func() {
				if r := recover(); r != nil && r != errFatal {
					panic(r)
				}
			}()
			Require(ft, "no-such-binary-for-portal-tests")
		}()
		want := "skip"
		if require == "1" {
			want = "fatal"
		}
		if ft.kind != want || !strings.Contains(ft.msg, "make test") {
			t.Errorf("PORTAL_REQUIRE_SERVERS=%q: %s %q, want %s", require, ft.kind, ft.msg, want)
		}
	}
}

// TestFreePort: the port is the test's until it ends: a server may listen
// on it, stop and listen again, while anyone else's bind to it fails.
func TestFreePort(t *testing.T) {
	p := FreePort(t)
	addr := &syscall.SockaddrInet4{Port: p, Addr: [4]byte{127, 0, 0, 1}}
	for round := range 2 {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("round %d: port %d from FreePort: %v", round, p, err)
		}
		ln.Close()
		// A bind without SO_REUSEADDR (as a bind to port 0 that landed on
		// it would be) is refused: the port is held.
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		err = syscall.Bind(fd, addr)
		syscall.Close(fd)
		if !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("round %d: another bind to reserved port %d: %v, want EADDRINUSE", round, p, err)
		}
	}
}

func TestEtcd(t *testing.T) {
	Require(t, "etcd")
	e := StartEtcd(t)
	if !strings.HasPrefix(e.ClientURL, "http://127.0.0.1:") || !strings.HasSuffix(e.ClientURL, e.Addr) {
		t.Fatalf("ClientURL %q, Addr %q", e.ClientURL, e.Addr)
	}
	const doc = "services:\n  user: {addr: 127.0.0.1:1}\n"
	e.Put(t, "/portal/config", doc)
	if got := e.Get(t, "/portal/config"); got != doc {
		t.Fatalf("Get = %q, want %q", got, doc)
	}
	if got := e.Get(t, "/portal/missing"); got != "" {
		t.Fatalf("Get(missing) = %q, want empty", got)
	}

	began := time.Now()
	e.Stop(t)
	t.Logf("etcd stopped in %v", time.Since(began).Round(time.Millisecond))
	if _, err := net.DialTimeout("tcp", e.Addr, time.Second); err == nil {
		t.Fatalf("%s still accepts connections after Stop", e.Addr)
	}
	e.Stop(t) // a second Stop does nothing

	e.Start(t)
	if got := e.Get(t, "/portal/config"); got != doc {
		t.Fatalf("after restart Get = %q, want %q", got, doc)
	}
	e.Put(t, "/portal/config", "v2")
	if got := e.Get(t, "/portal/config"); got != "v2" {
		t.Fatalf("Get = %q, want v2", got)
	}
}

func TestRedis(t *testing.T) {
	Require(t, "redis-server")
	r := StartRedis(t)
	do := func(args ...string) string {
		t.Helper()
		reply, err := RedisDo(r.Addr, 2*time.Second, args...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return reply
	}
	if got := do("SET", "session:1", "alice"); got != "+OK" {
		t.Fatalf("SET = %q", got)
	}
	if got := do("GET", "session:1"); got != "alice" {
		t.Fatalf("GET = %q, want alice", got)
	}
	if got := do("GET", "session:none"); got != "$-1" {
		t.Fatalf("GET of a missing key = %q, want $-1", got)
	}

	began := time.Now()
	r.Stop(t)
	t.Logf("redis stopped in %v", time.Since(began).Round(time.Millisecond))
	if _, err := RedisDo(r.Addr, time.Second, "PING"); err == nil {
		t.Fatal("PING answered after Stop")
	}
	r.Start(t)
	if got := do("GET", "session:1"); got != "alice" {
		t.Fatalf("after restart GET = %q, want alice", got)
	}

	r.Pause(t)
	began = time.Now()
	_, err := RedisDo(r.Addr, 300*time.Millisecond, "PING")
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("PING to a paused Redis: %v, want a timeout", err)
	}
	t.Logf("paused: PING timed out after %v", time.Since(began).Round(time.Millisecond))
	r.Resume(t)
	if got := do("PING"); got != "+PONG" {
		t.Fatalf("PING after Resume = %q", got)
	}
}

// TestRedisStopWhilePaused: the cleanup of a test that leaves Redis paused
// must still stop it promptly, with SIGTERM rather than SIGKILL after 5 s.
func TestRedisStopWhilePaused(t *testing.T) {
	Require(t, "redis-server")
	r := StartRedis(t)
	r.Pause(t)
	began := time.Now()
	r.Stop(t)
	if d := time.Since(began); d > 3*time.Second {
		t.Fatalf("Stop of a paused Redis took %v", d)
	}
}

func TestNATS(t *testing.T) {
	n := StartNATS(t)
	check := func() {
		t.Helper()
		info, err := NATSInfo(n.Addr, 2*time.Second)
		if err != nil {
			t.Fatalf("INFO: %v", err)
		}
		var i struct {
			Host      string `json:"host"`
			Port      int    `json:"port"`
			JetStream bool   `json:"jetstream"`
		}
		if err := json.Unmarshal([]byte(info), &i); err != nil {
			t.Fatalf("INFO %s: %v", info, err)
		}
		if n.URL != "nats://"+net.JoinHostPort(i.Host, strconv.Itoa(i.Port)) || !i.JetStream {
			t.Fatalf("URL %s, INFO %s", n.URL, info)
		}
	}
	check()
	n.Stop(t)
	if _, err := NATSInfo(n.Addr, time.Second); err == nil {
		t.Fatal("INFO after Stop")
	}
	n.Start(t)
	check()
}

// TestStartFailureQuotesLog: a server that cannot start fails the test with
// the end of its output.
func TestStartFailureQuotesLog(t *testing.T) {
	Require(t, "redis-server")
	ft := &fatalRecorder{TB: t}
	dir := t.TempDir()
	p := newProcess(t, "redis", "redis-server", dir)
	p.args = []string{"--no-such-option", "yes"}
	p.env = os.Environ()
	p.ready = func() error { return errors.New("never ready") }
	func() {
		defer func() {
			if r := recover(); r != nil && r != errFatal {
				panic(r)
			}
		}()
		p.start(ft)
	}()
	t.Logf("the failure message:\n%s", ft.msg)
	if !strings.Contains(ft.msg, "exited before it was ready") || !strings.Contains(ft.msg, "no-such-option") {
		t.Fatalf("failure message lacks the cause or the log:\n%s", ft.msg)
	}
	if p.running() || p.cmd != nil {
		t.Fatal("process still tracked after a failed start")
	}
}

var errFatal = errors.New("fatal")

// fatalRecorder records Fatalf and Skipf, and panics with errFatal
// instead of ending the test.
type fatalRecorder struct {
	testing.TB
	kind, msg string
}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.kind, f.msg = "fatal", fmt.Sprintf(format, args...)
	panic(errFatal)
}

func (f *fatalRecorder) Skipf(format string, args ...any) {
	f.kind, f.msg = "skip", fmt.Sprintf(format, args...)
	panic(errFatal)
}
