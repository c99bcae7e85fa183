// Package portal assembles Portal's services into a running system. RunAll is
// the embedded default: web, user and system in one process, each its own
// go-micro service, talking real RPC over loopback, with nothing to install.
package portal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/store"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/portal-go/portal/internal/audit"
	pauth "github.com/portal-go/portal/internal/auth"
	"github.com/portal-go/portal/internal/config"
	"github.com/portal-go/portal/internal/filestore"
	"github.com/portal-go/portal/internal/platform"
	"github.com/portal-go/portal/internal/sso"
	"github.com/portal-go/portal/internal/user"
	"github.com/portal-go/portal/internal/web"
)

// Options configure the embedded mode.
type Options struct {
	// HTTPAddress is where the gateway listens (default ":8080"), unless
	// Listener is given.
	HTTPAddress string
	Listener    net.Listener
	// DataDir holds the store and the auth keys.
	DataDir string
	// ConfigFile is the watched yaml config; missing means built-in defaults.
	ConfigFile string
	// Issuer is the OpenID provider's public URL (PORTAL_ISSUER); empty
	// derives it from the gateway's address, and says so.
	Issuer string
	// AdminPassword is the first admin's password; empty generates one.
	AdminPassword string
	// Keys, when set, replace the keys kept in DataDir.
	Keys *pauth.Keys
	Log  *slog.Logger
	// Ready, when set, is called with the gateway's address once it serves.
	Ready func(addr string)
	// Edge: trusted proxies, HSTS, the metrics token, the gateway key.
	Edge Edge
	// MetricsAddress, when set, serves GET /metrics, /healthz and /readyz
	// (with each check's error) on a listener of its own.
	MetricsAddress string
	// TraceEndpoint is the OTLP/HTTP receiver spans go to (empty: the
	// OTEL_EXPORTER_OTLP_* environment, else none; platform.NewTracing).
	TraceEndpoint string
	// SpanProcessors receive every span too (tests record them).
	SpanProcessors []sdktrace.SpanProcessor
	// Getenv reads the settings that come from the environment only (the
	// PORTAL_SMTP_* mail settings); nil is os.Getenv.
	Getenv func(string) string
}

// RunAll runs web, user and system in one process until ctx ends, then shuts
// down in order: stop taking HTTP requests, let those in flight finish, stop
// the services, close the store.
func RunAll(ctx context.Context, o Options) error {
	log := o.Log
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	keys, err := loadKeys(o, log)
	if err != nil {
		return err
	}
	cfg, err := config.OpenFile(o.ConfigFile, log)
	if err != nil {
		return err
	}
	defer cfg.Close()
	log.Info("config", "source", cfg.Source())

	minter, err := pauth.NewJWT(keys.Options()...)
	if err != nil {
		return err
	}
	verifier, err := pauth.NewJWT(pauth.Keys{Public: keys.Public}.Options()...)
	if err != nil {
		return err
	}

	proof, err := o.Edge.clientProof(o.DataDir, log)
	if err != nil {
		return err
	}
	tracing, err := platform.NewTracing(o.TraceEndpoint, o.SpanProcessors...)
	if err != nil {
		return err
	}
	log.Info("tracing", "spans", tracing.String())

	ml := platform.NewMicroLogger(log)
	// One registry for the three services and the gateway: the gateway's
	// GET /metrics shows them all.
	metrics := platform.NewMetrics()
	plugins := platform.Plugins{
		Registry: registry.NewMemoryRegistry(registry.Logger(ml)),
		Broker:   broker.NewMemoryBroker(broker.Logger(ml)),
		Address:  "127.0.0.1:0",
		Metrics:  metrics,
	}

	userStore, err := filestore.New(filepath.Join(o.DataDir, "store"), store.Database("user"), store.Table("user"))
	if err != nil {
		return err
	}
	defer userStore.Close()
	go sweep(ctx, userStore, log)
	systemStore, err := filestore.New(filepath.Join(o.DataDir, "store"), store.Database("system"), store.Table("system"))
	if err != nil {
		return err
	}
	defer systemStore.Close()
	go sweep(ctx, systemStore, log) // the audit log's expired entries
	// Audit entries go from user (and system) to system's log in one
	// process, through a queue committed to system's store: what is queued
	// when the process dies (even kill -9) is stored at the next start.
	stream, err := audit.NewDurableStream(systemStore, 0)
	if err != nil {
		return err
	}
	defer stream.Close()

	// Each service traces with a provider of its own, flushed when it stops.
	newService := func(name string) (*platform.Service, error) {
		s := platform.NewService(name, plugins, log)
		s.UseClientProof(proof)
		return s, s.UseTracing(tracing)
	}
	// user: accounts and sessions; the only service holding the private key.
	userSvc, err := newService("user")
	if err != nil {
		return err
	}
	if o.Listener == nil {
		// Listen now: the default issuer is the address actually bound.
		if o.Listener, err = net.Listen("tcp", o.HTTPAddress); err != nil {
			return fmt.Errorf("http: %w", err)
		}
	}
	if o.Issuer == "" {
		o.Issuer = sso.DefaultIssuer(o.Listener.Addr().String())
		log.Info("OpenID issuer derived from the listen address; set --issuer (PORTAL_ISSUER) to the public https URL", "issuer", o.Issuer)
	}
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	sender, err := mailSender(o.DataDir, getenv, log)
	if err != nil {
		return err
	}
	userHandler, err := mountUser(userSvc, userStore, userStore, minter, verifier, cfg, o.AdminPassword, o.Issuer, stream, sender, nil, log)
	if err != nil {
		return err
	}
	serveAdminSocket(userSvc, o.DataDir, userHandler, log)
	// system: the admin plane; it asks user about sessions, keeps the audit log.
	systemSvc, err := newService("system")
	if err != nil {
		return err
	}
	if err := mountSystem(systemSvc, plugins.Registry, verifier, cfg, systemStore, systemStore, stream, log); err != nil {
		return err
	}
	// web: the gateway, a go-micro service for its client and subscribers.
	webSvc, err := newService("web")
	if err != nil {
		return err
	}
	// The gateway's /readyz reports web's checks: the data dir the three
	// services write.
	webSvc.AddCheck(dataDirCheck(o.DataDir))
	gw, err := mountWeb(webSvc, o.Edge.webOptions(web.Options{
		Auth:    verifier,
		Config:  cfg,
		Cache:   platform.NewMemoryCache(time.Minute),
		Log:     log,
		Metrics: metrics,
		Issuer:  o.Issuer,
	}))
	if err != nil {
		return err
	}
	if o.MetricsAddress != "" {
		// The gateway's readiness: its own checks and user's and system's
		// answers, with their errors.
		ms, err := startSide("metrics", o.MetricsAddress, metricsMux(metrics, webSvc), log)
		if err != nil {
			return err
		}
		defer ms.stop()
	}
	return serve(ctx, o, log, gw.Handler(), userSvc, systemSvc, webSvc)
}

// serve starts the services in order, serves HTTP with h (when not nil)
// until ctx ends, and stops everything in reverse.
func serve(ctx context.Context, o Options, log *slog.Logger, h http.Handler, services ...*platform.Service) (err error) {
	for i, s := range services {
		if err := s.Start(); err != nil {
			stopAll(services[:i], log)
			return err
		}
	}
	defer stopAll(services, log)
	if h == nil {
		<-ctx.Done()
		log.Info("shutting down")
		return nil
	}

	ln := o.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", o.HTTPAddress); err != nil {
			return fmt.Errorf("http: %w", err)
		}
	}
	srv := NewHTTPServer(h)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("portal ready", "http", ln.Addr().String())
	if o.Ready != nil {
		o.Ready(ln.Addr().String())
	}
	select {
	case err := <-errc:
		return fmt.Errorf("http: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("http shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func stopAll(services []*platform.Service, log *slog.Logger) {
	for i := len(services) - 1; i >= 0; i-- {
		if err := services[i].Stop(); err != nil {
			log.Error("stop", "err", err)
		}
	}
}

// NewHTTPServer wraps h with the timeouts that keep slow clients from holding
// connections forever.
func NewHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
	}
}

// loadKeys returns the keys given, or those kept in the data dir.
func loadKeys(o Options, log *slog.Logger) (pauth.Keys, error) {
	if o.Keys != nil {
		if o.Keys.Public == "" || o.Keys.Private == "" {
			return pauth.Keys{}, errors.New("auth keys: one process runs the user service, which signs tokens: give both the public and the private key, or neither")
		}
		return *o.Keys, nil
	}
	keys, created, err := pauth.LoadOrCreateKeys(o.DataDir)
	if err != nil {
		return pauth.Keys{}, err
	}
	if created {
		log.Info("generated auth keys", "dir", o.DataDir)
	}
	return keys, nil
}

// ensureAdmin creates the first admin, printing a generated password once.
func ensureAdmin(ctx context.Context, h *user.Handler, password string, log *slog.Logger) error {
	created, generated, err := h.EnsureAdmin(ctx, password)
	if err != nil {
		return fmt.Errorf("first admin: %w", err)
	}
	switch {
	case generated != "":
		log.Warn("created the first admin account; this password is shown once, change it after signing in",
			"username", "admin", "password", generated)
	case created:
		log.Info("created the first admin account from PORTAL_ADMIN_PASSWORD", "username", "admin")
	}
	return nil
}

// sweepEvery is how often the embedded store drops expired records (ended
// sessions).
const sweepEvery = 10 * time.Minute

func sweep(ctx context.Context, st *filestore.Store, log *slog.Logger) {
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := st.Sweep(); err != nil {
				log.Error("store sweep", "err", err)
			} else if n > 0 {
				log.Info("store sweep", "expired_records_removed", n)
			}
		}
	}
}
