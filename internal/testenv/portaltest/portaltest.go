// Package portaltest runs Portal's embedded mode in the test's own process,
// on a free loopback port. It is apart from testenv because it links all of
// Portal: the packages whose tests need only servers (testenv's etcd, Redis,
// NATS) link a third of that, and each test binary is linked on every run.
package portaltest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	pauth "github.com/portal-go/portal/internal/auth"
	"github.com/portal-go/portal/internal/portal"
	"github.com/portal-go/portal/internal/testenv"
)

// tokenKeys is one token key pair per test binary, put into the fresh data
// dir of every Portal Start makes one for: an RSA key takes about
// 0.1 s to generate under -race, and a package starts dozens of Portals.
// Each keeps its own sessions and users; sharing the key only means a token
// of one would verify at another, which no test relies on either way.
var tokenKeys struct {
	once      sync.Once
	priv, pub []byte
	err       error
}

// MetricsToken opens GET /metrics on every test Portal's public port.
const MetricsToken = "metrics-token-for-tests"

// Portal is a running embedded Portal.
type Portal struct {
	// URL is the gateway's base URL, http://127.0.0.1:<port>.
	URL string
	// DataDir and ConfigFile are where it keeps data and reads config.
	DataDir    string
	ConfigFile string
	stop       context.CancelFunc
	done       chan error
}

// Options adjust Start.
type Options struct {
	// DataDir to use; empty means a fresh temporary one.
	DataDir string
	// Addr is the address to listen on (a restart keeps its URL, so its
	// OpenID issuer, with the address it had); empty means a free port on
	// loopback.
	Addr string
	// Config is written to the config file before start, when not empty.
	Config string
	// Log receives Portal's log; nil discards it unless PORTAL_TEST_LOG=1.
	// Writes come from several goroutines: it must be safe for that.
	Log io.Writer
	// SpanProcessors receive every span Portal makes (say, a
	// tracetest.SpanRecorder).
	SpanProcessors []sdktrace.SpanProcessor
	// Env holds settings Portal reads from the environment (PORTAL_SMTP_*),
	// for this Portal alone: they win over the process's environment, which
	// a test can set only when it does not run in parallel.
	Env map[string]string
}

// Start runs Portal's embedded mode on a free port, waits until it
// serves, and stops it when the test ends.
func Start(t testing.TB, o Options) *Portal {
	t.Helper()
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
		tokenKeys.once.Do(func() { tokenKeys.priv, tokenKeys.pub, tokenKeys.err = pauth.GenerateKeyPair() })
		err := tokenKeys.err
		if err == nil {
			err = pauth.SaveKeys(o.DataDir, tokenKeys.priv, tokenKeys.pub)
		}
		if err != nil {
			t.Fatalf("token keys: %v", err)
		}
	}
	cfgFile := filepath.Join(o.DataDir, "portal.yaml")
	if o.Config != "" {
		if err := os.WriteFile(cfgFile, []byte(o.Config), 0o600); err != nil {
			t.Fatalf("write config: %v", err)
		}
	}
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	w := o.Log
	if w == nil {
		w = io.Discard
		if os.Getenv("PORTAL_TEST_LOG") == "1" {
			w = os.Stderr
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Portal{URL: "http://" + ln.Addr().String(), DataDir: o.DataDir, ConfigFile: cfgFile, stop: cancel, done: make(chan error, 1)}
	ready := make(chan struct{})
	go func() {
		p.done <- portal.RunAll(ctx, portal.Options{
			Listener:       ln,
			DataDir:        o.DataDir,
			ConfigFile:     cfgFile,
			AdminPassword:  testenv.AdminPassword,
			Edge:           portal.Edge{MetricsToken: MetricsToken},
			Log:            slog.New(slog.NewTextHandler(w, nil)),
			Ready:          func(string) { close(ready) },
			SpanProcessors: o.SpanProcessors,
			Getenv: func(k string) string {
				if v, ok := o.Env[k]; ok {
					return v
				}
				return os.Getenv(k)
			},
		})
	}()
	select {
	case <-ready:
	case err := <-p.done:
		cancel()
		t.Fatalf("portal did not start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("portal not ready after 30s")
	}
	t.Cleanup(func() { p.Stop(t) })
	return p
}

// Stop shuts Portal down and waits for it; calling it again does nothing.
func (p *Portal) Stop(t testing.TB) {
	t.Helper()
	if p.stop == nil {
		return
	}
	p.stop()
	p.stop = nil
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("portal stopped with: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("portal did not stop within 30s")
	}
}
