package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/portal-go/portal/internal/testenv"
)

// embeddedResult is row 4: Portal's embedded mode (`portal` alone).
type embeddedResult struct {
	readyFirst   time.Duration // start to GET /readyz 200, fresh data dir
	readyRestart time.Duration // the same, on the data dir of the first start
	rssIdle      int64         // after the restart, once idle
	rssLoaded    int64         // right after the load
	rssPeak      int64         // the process's high-water mark
	rssRested    int64         // idle again, rest after the load
	me, logins   result        // the load
}

// embedded is one `portal` process of row 4.
type embedded struct {
	cmd  *exec.Cmd
	done chan error
	url  string
}

// startEmbedded runs `portal` on dir and addr and returns when GET /readyz
// answers 200, with the time that took from the exec.
func startEmbedded(ctx context.Context, e *env, bin, dir, addr string) (*embedded, time.Duration) {
	logf, err := os.OpenFile(filepath.Join(dir, "portal.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		e.Fatalf("embedded log: %v", err)
	}
	cmd := exec.Command(bin, "--http_address", addr, "--data_dir", filepath.Join(dir, "data"), "--config", filepath.Join(dir, "portal.yaml"))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "PORTAL_ADMIN_PASSWORD=" + testenv.AdminPassword, "PORTAL_METRICS_TOKEN=" + benchMetricsToken}
	// The Go runtime's memory knobs pass through, to try them.
	for _, k := range []string{"GOGC", "GOMEMLIMIT"} {
		if v, ok := os.LookupEnv(k); ok {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &embedded{cmd: cmd, done: make(chan error, 1), url: "http://" + addr}
	began := time.Now()
	if err := cmd.Start(); err != nil {
		e.Fatalf("start %s: %v", bin, err)
	}
	go func() { p.done <- cmd.Wait(); logf.Close() }()
	e.Cleanup(func() { p.stop() })

	probe := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(30 * time.Second)
	for {
		if rsp, err := probe.Get(p.url + "/readyz"); err == nil {
			rsp.Body.Close()
			if rsp.StatusCode == http.StatusOK {
				return p, time.Since(began)
			}
		}
		select {
		case err := <-p.done:
			p.done <- err
			e.Fatalf("embedded portal exited before it was ready: %v (log: %s)", err, filepath.Join(dir, "portal.log"))
		case <-deadline:
			e.Fatalf("embedded portal not ready after 30s")
		case <-ctx.Done():
			e.Fatalf("interrupted")
		case <-tick.C:
		}
	}
}

// stop ends the process (SIGTERM, then SIGKILL after 15 s) and waits.
func (p *embedded) stop() {
	select {
	case err := <-p.done:
		p.done <- err
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		p.done <- <-p.done
	}
}

// runEmbedded measures row 4: start to ready on a fresh data dir and again
// on the same one, resident memory once idle, then under d of load (GET
// /api/v1/me from 64 connections and logins from 2, at once), right after
// it, and once it has been idle again for rest.
func runEmbedded(ctx context.Context, e *env, bin string, idle, d, rest time.Duration) embeddedResult {
	var res embeddedResult
	dir := e.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "portal.yaml"), []byte(benchConfig), 0o600); err != nil {
		e.Fatalf("embedded config: %v", err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(e))

	p, took := startEmbedded(ctx, e, bin, dir, addr)
	res.readyFirst = took
	progress("embedded: ready in %v on a fresh data dir", took.Round(time.Millisecond))
	p.stop()
	p, took = startEmbedded(ctx, e, bin, dir, addr)
	res.readyRestart = took
	progress("embedded: ready in %v on the same data dir", took.Round(time.Millisecond))

	select {
	case <-time.After(idle): // idle on purpose: memory at rest is the measure
	case <-ctx.Done():
		return res
	}
	pid := p.cmd.Process.Pid
	res.rssIdle, _, _ = memory(pid)
	progress("embedded: RSS %s MiB after %v idle", mb(res.rssIdle), idle)

	creds, _ := json.Marshal(map[string]string{"username": "admin", "password": testenv.AdminPassword})
	token := login(e, p.url, creds)
	me := request{method: http.MethodGet, url: p.url + "/api/v1/me", token: token, want: http.StatusOK}
	in := request{method: http.MethodPost, url: p.url + "/api/v1/login", body: creds, want: http.StatusOK}
	meClient, inClient := newClient(64), newClient(2)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); res.me = loadHTTP(ctx, meClient, me, 64, d, 0) }()
	go func() { defer wg.Done(); res.logins = loadHTTP(ctx, inClient, in, 2, d, 0) }()
	wg.Wait()
	res.rssLoaded, res.rssPeak, _ = memory(pid)
	progress("embedded: after the load: %s", goMemory(p.url))
	sm, si := summarize(res.me), summarize(res.logins)
	progress("embedded: after %v of load (%d GET /me, p99 %s ms, max %s ms; %d logins, p99 %s ms, max %s ms; %d errors %s%s): RSS %s MiB, peak %s MiB",
		d, res.me.ok, ms(sm.p99), ms(sm.max), res.logins.ok, ms(si.p99), ms(si.max),
		res.me.errs+res.logins.errs, res.me.firstErr, res.logins.firstErr, mb(res.rssLoaded), mb(res.rssPeak))
	select {
	case <-time.After(rest): // idle again: is the load's memory given back?
	case <-ctx.Done():
		return res
	}
	res.rssRested, _, _ = memory(pid)
	progress("embedded: RSS %s MiB after %v idle again (%s)", mb(res.rssRested), rest, goMemory(p.url))
	p.stop()
	return res
}

// benchMetricsToken opens the embedded Portal's GET /metrics.
const benchMetricsToken = "bench-metrics-token"

// goMemory is what the Go runtime of the Portal at base says of its memory,
// from its GET /metrics (with the metrics token): where the RSS goes.
func goMemory(base string) string {
	req, err := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return err.Error()
	}
	req.Header.Set("Authorization", "Bearer "+benchMetricsToken)
	rsp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err.Error()
	}
	defer rsp.Body.Close()
	b, err := io.ReadAll(rsp.Body)
	if err != nil {
		return err.Error()
	}
	want := []string{"go_memstats_heap_inuse_bytes", "go_memstats_heap_idle_bytes", "go_memstats_heap_released_bytes",
		"go_memstats_stack_inuse_bytes", "go_memstats_sys_bytes", "go_gc_gogc_percent", "go_gc_gomemlimit_bytes"}
	var parts []string
	for _, line := range strings.Split(string(b), "\n") {
		name, v, ok := strings.Cut(line, " ")
		if !ok || !slices.Contains(want, name) {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			continue
		}
		if strings.HasSuffix(name, "_bytes") && f < 1<<50 {
			v = mb(int64(f)) + " MiB"
		}
		parts = append(parts, strings.TrimPrefix(strings.TrimPrefix(name, "go_memstats_"), "go_gc_")+" "+v)
	}
	return strings.Join(parts, ", ")
}
