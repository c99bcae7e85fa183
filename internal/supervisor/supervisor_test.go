package supervisor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/selector"
)

func TestOutput(t *testing.T) {
	var w bytes.Buffer
	o := newOutput("user", &w, 3)
	for _, chunk := range []string{"one\ntw", "o\n", "three\nfour\n", "password=hunter2 x=1\nno newline"} {
		if n, err := o.Write([]byte(chunk)); n != len(chunk) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", chunk, n, err)
		}
	}
	want := "[user] one\n[user] two\n[user] three\n[user] four\n[user] password=hunter2 x=1\n"
	if w.String() != want {
		t.Errorf("passed on:\n%s\nwant:\n%s", w.String(), want)
	}
	if got := o.Last(10); strings.Join(got, "|") != "three|four|password=[redacted] x=1" {
		t.Errorf("Last(10) = %q", got)
	}
	if got := o.Last(1); len(got) != 1 || got[0] != "password=[redacted] x=1" {
		t.Errorf("Last(1) = %q", got)
	}
	if got := o.Last(0); len(got) != 0 {
		t.Errorf("Last(0) = %q", got)
	}
}

func TestOutputLongLineAndConcurrentWriters(t *testing.T) {
	var w bytes.Buffer
	o := newOutput("web", &w, 10)
	long := strings.Repeat("x", maxLine+10)
	o.Write([]byte(long + "\n"))
	if got := o.Last(2); len(got) != 2 || len(got[0]) != maxLine || got[1] != strings.Repeat("x", 10) {
		t.Fatalf("a line over %d bytes: kept %d lines", maxLine, len(got))
	}

	// The runtime copies stdout and stderr into one output from two
	// goroutines: whole lines written in one piece stay whole.
	o = newOutput("web", io.Discard, 1000)
	var wg sync.WaitGroup
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				fmt.Fprintf(o, "stream=%d line=%d end\n", g, i)
			}
		}()
	}
	wg.Wait()
	lines := o.Last(1000)
	if len(lines) != 400 {
		t.Fatalf("kept %d lines, want 400", len(lines))
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "stream=") || !strings.HasSuffix(l, " end") || strings.Count(l, "stream=") != 1 {
			t.Fatalf("mixed line %q", l)
		}
	}
}

func TestLastError(t *testing.T) {
	tests := []struct{ last, want string }{
		{`time=x level=INFO msg=started`, ""},
		{`time=x level=ERROR msg="store: open" err=timeout`, `time=x level=ERROR msg="store: open" err=timeout`},
		{`portal: MICRO_REGISTRY "consul": unknown`, `portal: MICRO_REGISTRY "consul": unknown`},
	}
	for _, tc := range tests {
		o := newOutput("user", io.Discard, 5)
		o.Write([]byte("first\n" + tc.last + "\n"))
		if got := o.lastError(); got != tc.want {
			t.Errorf("last line %q: lastError = %q, want %q", tc.last, got, tc.want)
		}
	}
	if got := newOutput("user", io.Discard, 5).lastError(); got != "" {
		t.Errorf("no lines: lastError = %q", got)
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{`msg="created" username=admin password=Xy7-abc`, `msg="created" username=admin password=[redacted]`},
		{`password="with space \" quote" next=1`, `password=[redacted] next=1`},
		{`old_password=x`, `old_password=x`}, // not a word boundary before password: not ours
		{`nothing here`, `nothing here`},
	}
	for _, tc := range tests {
		if got := redact(tc.in); got != tc.want {
			t.Errorf("redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		n      int
		want   time.Duration
		wantOK bool
	}{
		{1, time.Second, true},
		{2, 2 * time.Second, true},
		{3, 4 * time.Second, true},
		{5, 16 * time.Second, true},
		{6, 30 * time.Second, true}, // 32 s, capped
		{7, 0, false},
	}
	for _, tc := range tests {
		d, ok := backoff(tc.n)
		if d != tc.want || ok != tc.wantOK {
			t.Errorf("backoff(%d) = %v, %v; want %v, %v", tc.n, d, ok, tc.want, tc.wantOK)
		}
	}
}

func TestParseStat(t *testing.T) {
	rest := " 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 4242 0 0"
	tests := []struct {
		name, in string
		want     stat
		wantErr  bool
	}{
		{"plain", "123 (portal) S 77" + rest, stat{state: 'S', ppid: 77, start: 4242}, false},
		{"command with spaces and parens", "123 (a) b (c) Z 1" + rest, stat{state: 'Z', ppid: 1, start: 4242}, false},
		{"no command", "123 portal S 77" + rest, stat{}, true},
		{"too short", "123 (portal) S 77 0 0", stat{}, true},
		{"bad ppid", "123 (portal) S x" + rest, stat{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStat([]byte(tc.in))
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("parseStat = %+v, %v; want %+v, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// TestFindChildWaitsForItsCommandLine: a child of this process whose
// command line is still empty (being exec'd) is looked at again until it
// shows one, for up to childSettle; a child that never shows one is given
// up then. A fake /proc: the real window is too short to hit on purpose.
func TestFindChildWaitsForItsCommandLine(t *testing.T) {
	dir := t.TempDir()
	const pid, start = 4242, 12345
	proc := filepath.Join(dir, strconv.Itoa(pid))
	if err := os.Mkdir(proc, 0o755); err != nil {
		t.Fatal(err)
	}
	// Fields after the command: state, ppid, 17 others, starttime.
	stat := fmt.Sprintf("%d (portal user) S %d %s%d 0 0\n", pid, os.Getpid(), strings.Repeat("0 ", 17), start)
	if err := os.WriteFile(filepath.Join(proc, "stat"), []byte(stat), 0o644); err != nil {
		t.Fatal(err)
	}
	cmdline := filepath.Join(proc, "cmdline")
	if err := os.WriteFile(cmdline, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if p, _, err := findChildIn(dir, "user"); p != 0 || err != nil {
		t.Fatalf("a child that never shows its command line: pid %d, %v; want 0 after %v", p, err, childSettle)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		tmp := cmdline + ".new"
		if err := os.WriteFile(tmp, []byte("/usr/bin/portal\x00user\x00"), 0o644); err == nil {
			os.Rename(tmp, cmdline)
		}
	}()
	if p, st, err := findChildIn(dir, "user"); p != pid || st != start || err != nil {
		t.Fatalf("findChildIn = %d, %d, %v; want %d, %d once its command line shows", p, st, err, pid, start)
	}
}

// TestFindChildAndAlive runs a real child and follows it through /proc:
// found by its first argument, alive, then a zombie (not alive), then gone.
func TestFindChildAndAlive(t *testing.T) {
	if _, err := os.Stat(procDir); err != nil {
		t.Skip("no /proc")
	}
	arg := "3600" + strconv.Itoa(os.Getpid()) // an argument no other child has
	cmd := exec.Command("sleep", arg)
	if err := cmd.Start(); err != nil {
		t.Skipf("sleep: %v", err)
	}
	waited := false
	t.Cleanup(func() {
		if !waited {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	pid, start, err := findChild(arg)
	if err != nil || pid != cmd.Process.Pid {
		t.Fatalf("findChild = %d, %v; want %d", pid, err, cmd.Process.Pid)
	}
	if !alive(pid, start) {
		t.Fatalf("alive(%d) = false for a running child", pid)
	}
	if alive(pid, start+1) {
		t.Errorf("alive with another start time: a reused pid must not count")
	}
	if p, _, _ := findChild("no-such-argument"); p != 0 {
		t.Errorf("findChild(no-such-argument) = %d", p)
	}
	if err := cmd.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	// Not yet waited for: a zombie, which is not alive either.
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid, start) {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still alive 10s after SIGKILL", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if p, _, _ := findChild(arg); p != 0 {
		t.Errorf("findChild found the zombie %d", p)
	}
	cmd.Wait()
	waited = true
	if alive(pid, start) {
		t.Errorf("alive after the child was reaped")
	}
}

func TestRPCError(t *testing.T) {
	tests := []struct {
		err    error
		wantID string
		code   int32
	}{
		{ErrUnknownService, "runtime.not_found", http.StatusNotFound},
		{fmt.Errorf("restart: %w", ErrUnknownService), "runtime.not_found", http.StatusNotFound},
		{ErrBadLines, "runtime.bad_lines", http.StatusBadRequest},
		{ErrStopping, "runtime.unavailable", http.StatusServiceUnavailable},
		{errors.New("boom"), "runtime.internal", http.StatusInternalServerError},
	}
	for _, tc := range tests {
		e := merrors.FromError(rpcError(tc.err))
		if e.Id != tc.wantID || e.Code != tc.code {
			t.Errorf("rpcError(%v) = %s %d, want %s %d", tc.err, e.Id, e.Code, tc.wantID, tc.code)
		}
	}
}

func TestCheckEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{"nothing set", nil, ""},
		{"etcd and nats given", map[string]string{"MICRO_REGISTRY": "etcd", "MICRO_REGISTRY_ADDRESS": "127.0.0.1:2379", "MICRO_BROKER": "nats"}, ""},
		{"loopback RPC, free port", map[string]string{"MICRO_SERVER_ADDRESS": "127.0.0.1:0"}, ""},
		{"both keys", map[string]string{"MICRO_AUTH_PUBLIC_KEY": "a", "MICRO_AUTH_PRIVATE_KEY": "b"}, ""},
		{"mdns", map[string]string{"MICRO_REGISTRY": "mdns"}, "MICRO_REGISTRY=mdns"},
		{"memory broker", map[string]string{"MICRO_BROKER": "memory"}, "MICRO_BROKER=memory"},
		{"one RPC port for three", map[string]string{"MICRO_SERVER_ADDRESS": "127.0.0.1:9000"}, "MICRO_SERVER_ADDRESS"},
		{"one metrics port for three", map[string]string{"PORTAL_METRICS_ADDRESS": "127.0.0.1:9100"}, "PORTAL_METRICS_ADDRESS"},
		{"pprof for three", map[string]string{"MICRO_DEBUG_PROFILE": "http"}, "MICRO_DEBUG_PROFILE"},
		{"public key only", map[string]string{"MICRO_AUTH_PUBLIC_KEY": "a"}, "give both"},
		{"private key only", map[string]string{"MICRO_AUTH_PRIVATE_KEY": "b"}, "give both"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkEnv(func(k string) string { return tc.env[k] })
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("checkEnv = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("checkEnv = %v, want an error about %s", err, tc.wantErr)
			}
		})
	}
}

func TestChildEnv(t *testing.T) {
	s := &supervisor{o: Options{HTTPAddress: ":8080", ConfigFile: "/etc/portal.yaml"}, dataDir: "/d",
		etcdAddr: "127.0.0.1:2379", natsURL: "nats://127.0.0.1:4222", private: "PRIV", tmpdir: "/tmp"}
	t.Setenv("MICRO_SERVER_ADDRESS", "")
	for _, name := range services {
		env := strings.Join(s.childEnv(name), "\n") + "\n"
		for _, want := range []string{"MICRO_REGISTRY=etcd\n", "MICRO_REGISTRY_ADDRESS=127.0.0.1:2379\n",
			"MICRO_BROKER=nats\n", "MICRO_BROKER_ADDRESS=nats://127.0.0.1:4222\n",
			"PORTAL_EVENTS=nats\n", "PORTAL_EVENTS_ADDRESS=nats://127.0.0.1:4222\n",
			"PORTAL_DATA_DIR=/d\n", "PORTAL_CONFIG_FILE=/etc/portal.yaml\n", "MICRO_SERVER_ADDRESS=127.0.0.1:0\n",
			"TMPDIR=/tmp\n", "PORTAL_SUPERVISOR_PID=" + strconv.Itoa(os.Getpid()) + "\n"} {
			if !strings.Contains(env, want) {
				t.Errorf("%s: no %q in\n%s", name, want, env)
			}
		}
		if got := strings.Contains(env, "MICRO_AUTH_PRIVATE_KEY=PRIV"); got != (name == "user") {
			t.Errorf("%s gets the private key: %v", name, got)
		}
		if got := strings.Contains(env, "PORTAL_HTTP_ADDRESS=:8080"); got != (name == "web") {
			t.Errorf("%s gets the HTTP address: %v", name, got)
		}
	}
}

// TestChildEnvCredentials: with the embedded servers' logins, every child
// gets them: the etcd user in ETCD_*, the NATS user in the addresses.
func TestChildEnvCredentials(t *testing.T) {
	s := &supervisor{o: Options{HTTPAddress: ":8080"}, dataDir: "/d", etcdAddr: "127.0.0.1:2379", natsURL: "nats://127.0.0.1:4222",
		creds: Credentials{EtcdUser: "portal", EtcdPassword: "ep", NATSUser: "portal", NATSPassword: "n/p"}}
	t.Setenv("MICRO_REGISTRY_ADDRESS", "")
	t.Setenv("MICRO_BROKER_ADDRESS", "")
	for _, name := range services {
		env := strings.Join(s.childEnv(name), "\n") + "\n"
		for _, want := range []string{"ETCD_USERNAME=portal\n", "ETCD_PASSWORD=ep\n",
			"MICRO_BROKER_ADDRESS=nats://portal:n%2Fp@127.0.0.1:4222\n", "PORTAL_EVENTS_ADDRESS=nats://portal:n%2Fp@127.0.0.1:4222\n"} {
			if !strings.Contains(env, want) {
				t.Errorf("%s: no %q in\n%s", name, want, env)
			}
		}
	}
}

func TestRuntimeLogger(t *testing.T) {
	var exits []string
	l := &runtimeLogger{log: slog.New(slog.NewTextHandler(io.Discard, nil)), exited: func(name, status string) {
		exits = append(exits, name+":"+status)
	}}
	// The lines go-micro v4.11.0's runtime logs when a process ends.
	l.Logf(4, "Service %s terminated with error %s", "user", "signal: killed")
	l.Logf(4, "Service %s terminated with error %s", "web", echild)
	l.Logf(1, "Runtime service %s forking new process", "system")
	if strings.Join(exits, ",") != "user:signal: killed" {
		t.Errorf("exits = %q, want user's signal only", exits)
	}
}

func TestStatusNotSupervised(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	c := client.NewClient(client.Registry(reg), client.Selector(selector.NewSelector(selector.Registry(reg))))
	ctx := context.Background()
	if _, err := Status(ctx, c); !errors.Is(err, ErrNotSupervised) {
		t.Errorf("Status = %v, want ErrNotSupervised", err)
	}
	if _, err := Restart(ctx, c, "web"); !errors.Is(err, ErrNotSupervised) {
		t.Errorf("Restart = %v, want ErrNotSupervised", err)
	}
	if _, err := Logs(ctx, c, "web", 10); !errors.Is(err, ErrNotSupervised) {
		t.Errorf("Logs = %v, want ErrNotSupervised", err)
	}
}

func TestWithSupervisor(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	parent := context.Background()

	t.Setenv(envSupervisorPID, "")
	if ctx := WithSupervisor(parent, log); ctx != parent {
		t.Errorf("not supervised: want the context unchanged")
	}

	// A supervisor that is not (or no longer) the parent: the context ends.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skipf("true: %v", err)
	}
	t.Setenv(envSupervisorPID, strconv.Itoa(cmd.Process.Pid))
	ctx := WithSupervisor(parent, log)
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatalf("the context lives on 5s after its supervisor is gone")
	}
}

// TestExitPolicy drives a child's state through exits as the monitor sees
// them: quick exits back off and, past the limit, leave it in error; an exit
// after a stable run starts the count again.
func TestExitPolicy(t *testing.T) {
	c := &child{name: "user", out: newOutput("user", io.Discard, 10), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	exit := func(lived time.Duration, status string) {
		t.Helper()
		c.status, c.pid, c.startedAt = StatusRunning, 0, time.Now().Add(-lived)
		c.retryAt = time.Time{}
		c.exitErr = status
		c.exited()
		if status == "" {
			// An exit 0 logs no status: the first look waits for it.
			if c.status != StatusRunning {
				t.Fatalf("first look at an exit with no status: %s, want it to wait a tick", c.status)
			}
			c.exited()
		}
	}
	for n := 1; n <= maxQuickRestarts; n++ {
		before := time.Now()
		exit(time.Second, "exit status 1")
		want, _ := backoff(n)
		if c.status != StatusStarting || c.quick != n || c.retryAt.Before(before.Add(want)) || c.retryAt.After(time.Now().Add(want)) {
			t.Fatalf("quick exit %d: status %s, quick %d, retry in %v; want starting, %d, %v",
				n, c.status, c.quick, time.Until(c.retryAt).Round(time.Millisecond), n, want)
		}
		if !strings.HasPrefix(c.lastErr, "exited after 1s (exit status 1)") {
			t.Fatalf("last error %q", c.lastErr)
		}
	}
	exit(time.Second, "")
	if c.status != StatusError || !c.retryAt.IsZero() {
		t.Fatalf("after %d quick exits: status %s, retry at %v; want error, none", maxQuickRestarts+1, c.status, c.retryAt)
	}
	c.out.Write([]byte("time=x level=ERROR msg=boom\n"))
	exit(stableAfter+time.Second, "signal: killed")
	if c.status != StatusStarting || c.quick != 1 {
		t.Fatalf("exit after a stable run: status %s, quick %d; want starting, 1", c.status, c.quick)
	}
	if want := "(signal: killed): time=x level=ERROR msg=boom"; !strings.HasSuffix(c.lastErr, want) {
		t.Errorf("last error %q, want it to end %q", c.lastErr, want)
	}
}
