package portal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/registry"
)

// TestParseService: the one-service mode's command line and environment
// become settings, through go-micro's cmd, without touching os.Args.
func TestParseService(t *testing.T) {
	t.Setenv("MICRO_CLIENT_RETRIES", "4")
	t.Setenv("PORTAL_ADMIN_PASSWORD", "from-env")
	before := slices.Clone(os.Args)
	s, err := ParseService("user", []string{
		"--registry", "etcd", "--registry_address", "127.0.0.1:1",
		"--register_ttl", "20", "--server_address", "127.0.0.1:0", "--server_metadata", "zone=a=b",
		"--http_address", "127.0.0.1:9", "--cache", "none", "--events", "memory",
	}, io.Discard)
	if err != nil {
		t.Fatalf("ParseService: %v", err)
	}
	if !slices.Equal(os.Args, before) {
		t.Errorf("os.Args changed: %q, was %q", os.Args, before)
	}
	for _, c := range []struct{ what, got, want string }{
		{"registry", s.Registry.String(), "etcd"},
		{"registry address", strings.Join(s.Registry.Options().Addrs, ","), "127.0.0.1:1"},
		{"rpc", s.RPC, "grpc"},
		{"http address", s.HTTPAddress, "127.0.0.1:9"},
		{"server address", s.Server.Address, "127.0.0.1:0"},
		{"metadata", s.Server.Metadata["zone"], "a=b"},
		{"cache", s.Cache, "none"},
		{"admin password", s.AdminPassword, "from-env"},
	} {
		if c.got != c.want {
			t.Errorf("%s: %q, want %q", c.what, c.got, c.want)
		}
	}
	if s.Server.RegisterTTL != 20*time.Second || s.Server.RegisterInterval != registerInterval {
		t.Errorf("register ttl %v, interval %v: want 20s (set) and Portal's %v", s.Server.RegisterTTL, s.Server.RegisterInterval, registerInterval)
	}
	if s.Calls.Retries == nil || *s.Calls.Retries != 4 {
		t.Errorf("MICRO_CLIENT_RETRIES=4: retries %v", s.Calls.Retries)
	}
	if s.Store != nil {
		t.Errorf("MICRO_STORE unset: store %v, want nil (the file store)", s.Store)
	}
}

// TestParseServiceRefuses: --help, unknown flags and settings no service can
// run with end parsing with an error, never the process.
func TestParseServiceRefuses(t *testing.T) {
	if _, err := ParseService("web", []string{"--help"}, io.Discard); !errors.Is(err, ErrHelp) {
		t.Errorf("--help: %v, want ErrHelp", err)
	}
	for _, args := range [][]string{
		{"--no_such_flag"},
		{"--server", "mucp"},
		{"--server", "mucp", "--client", "grpc"},
		{"--server", "http"},
		{"--profile", "cpu"},
		{"--profile", "http", "--profile_address", "0.0.0.0:6060"},
		{"--registry", "nonesuch"},
	} {
		if _, err := ParseService("web", args, io.Discard); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
	if _, err := ParseService("gateway", nil, io.Discard); err == nil {
		t.Error("an unknown service was accepted")
	}
}

// TestBuildInProcess builds the three services from settings values, with
// no binary and no command line, on a shared memory registry and broker,
// and drives them through the gateway: the admin logs in (web -> user) and
// lists users (web -> system -> user).
func TestBuildInProcess(t *testing.T) {
	parallel(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	settings := inProcessSettings(t.TempDir(), registry.NewMemoryRegistry())
	var gateway http.Handler
	for _, name := range []string{"user", "system", "web"} { // user writes the keys the others read
		b := startInProcess(ctx, t, settings(name), log)
		if b.Service.Server().Options().RegisterTTL != registerTTL {
			t.Errorf("%s: register TTL %v, want Portal's %v", name, b.Service.Server().Options().RegisterTTL, registerTTL)
		}
		if (b.Gateway != nil) != (name == "web") {
			t.Errorf("%s: gateway %v", name, b.Gateway)
		}
		gateway = b.Gateway
	}
	srv := httptest.NewServer(gateway)
	defer srv.Close()

	body, _ := json.Marshal(map[string]string{"username": "admin", "password": "in-process-admin-pw"})
	rsp, err := http.Post(srv.URL+"/api/v1/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	var login struct{ Token string }
	json.NewDecoder(rsp.Body).Decode(&login)
	rsp.Body.Close()
	if rsp.StatusCode != http.StatusOK || login.Token == "" {
		t.Fatalf("login: %s, token %q", rsp.Status, login.Token)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/api/v1/admin/users", nil)
	req.Header.Set("Authorization", "Bearer "+login.Token)
	rsp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("admin users: %v", err)
	}
	data, _ := io.ReadAll(rsp.Body)
	rsp.Body.Close()
	if rsp.StatusCode != http.StatusOK || !strings.Contains(string(data), `"admin"`) {
		t.Fatalf("admin users: %s %s", rsp.Status, data)
	}
}

// inProcessSettings gives the settings of an in-process service named name
// on reg, a memory broker shared by every service of the same settings, and
// a data dir (dir) shared by them too.
func inProcessSettings(dir string, reg registry.Registry) func(name string) ServiceSettings {
	brk := broker.NewMemoryBroker()
	return func(name string) ServiceSettings {
		return ServiceSettings{
			Name: name, Registry: reg, Broker: brk, RPC: "grpc",
			Server:  ServerSettings{Address: "127.0.0.1:0"},
			DataDir: dir, ConfigFile: filepath.Join(dir, "none.yaml"), AdminPassword: "in-process-admin-pw",
			Cache: "memory", Events: "memory",
		}
	}
}

// startInProcess builds and starts the service s describes, stopped and
// closed when the test ends.
func startInProcess(ctx context.Context, t *testing.T, s ServiceSettings, log *slog.Logger) *Built {
	t.Helper()
	b, err := Build(ctx, s, log)
	if err != nil {
		t.Fatalf("Build %s: %v", s.Name, err)
	}
	t.Cleanup(b.Close)
	if err := b.Service.Start(); err != nil {
		t.Fatalf("start %s: %v", s.Name, err)
	}
	t.Cleanup(func() { b.Service.Stop() })
	return b
}

// awayRegistry is a registry that stops answering reads while away is set,
// as etcd does while it restarts.
type awayRegistry struct {
	registry.Registry
	away atomic.Bool
}

var errAway = errors.New("registry away")

func (r *awayRegistry) GetService(name string, opts ...registry.GetOption) ([]*registry.Service, error) {
	if r.away.Load() {
		return nil, errAway
	}
	return r.Registry.GetService(name, opts...)
}

func (r *awayRegistry) ListServices(opts ...registry.ListOption) ([]*registry.Service, error) {
	if r.away.Load() {
		return nil, errAway
	}
	return r.Registry.ListServices(opts...)
}

// TestSystemRegistrationIgnoresTheRegistry: the system service's
// registration check does not ask the registry. A node that cannot reach the
// registry cannot leave it either: the deregistration the failed check
// makes lands once the registry answers again and takes a healthy node out
// (TestDistributed/e_etcd_restart lost the system node 1.4 s after etcd's
// restart so: its check had started while etcd was down). Its readiness
// still says that the registry is away.
func TestSystemRegistrationIgnoresTheRegistry(t *testing.T) {
	parallel(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reg := &awayRegistry{Registry: registry.NewMemoryRegistry()}
	settings := inProcessSettings(t.TempDir(), reg)
	startInProcess(ctx, t, settings("user"), log) // writes the keys system reads
	sys := startInProcess(ctx, t, settings("system"), log)

	reg.away.Store(true)
	if err := sys.Service.Server().Options().RegisterCheck(ctx); err != nil {
		t.Errorf("registration check with the registry away: %v, want nil (the node stays registered)", err)
	}
	if checks, ok := sys.Service.Readiness(ctx); ok || checks["registry"] == "ok" {
		t.Errorf("readiness with the registry away: %v (ready %v), want the registry failing", checks, ok)
	}
	// The metrics listener: /readyz says so; the orchestrator's probe,
	// /readyz/lifecycle, keeps the node in its load balancer.
	metrics := metricsMux(sys.Metrics, sys.Service)
	for path, want := range map[string]int{"/readyz": http.StatusServiceUnavailable, "/readyz/lifecycle": http.StatusOK} {
		rsp := httptest.NewRecorder()
		metrics.ServeHTTP(rsp, httptest.NewRequest("GET", path, nil))
		if rsp.Code != want {
			t.Errorf("GET %s on the metrics listener with the registry away: %d %s, want %d", path, rsp.Code, rsp.Body, want)
		}
	}
	reg.away.Store(false)
	if checks, ok := sys.Service.Readiness(ctx); !ok {
		t.Errorf("readiness with the registry back: %v, want ready", checks)
	}
}
