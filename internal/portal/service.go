package portal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	redisstore "github.com/go-micro/plugins/v4/store/redis"
	goredis "github.com/go-redis/redis/v8"
	"go-micro.dev/v4/auth"
	"go-micro.dev/v4/cache"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/events"
	"go-micro.dev/v4/server"
	"go-micro.dev/v4/store"

	// Plugins go-micro's cmd can choose by name (MICRO_REGISTRY=etcd, ...).
	_ "github.com/go-micro/plugins/v4/broker/nats"
	_ "github.com/go-micro/plugins/v4/client/grpc"
	_ "github.com/go-micro/plugins/v4/server/grpc"

	"github.com/portal-go/portal/internal/audit"
	pauth "github.com/portal-go/portal/internal/auth"
	"github.com/portal-go/portal/internal/config"
	"github.com/portal-go/portal/internal/filestore"
	"github.com/portal-go/portal/internal/kv"
	"github.com/portal-go/portal/internal/natsx"
	"github.com/portal-go/portal/internal/platform"
	"github.com/portal-go/portal/internal/redisx"
	"github.com/portal-go/portal/internal/sso"
	"github.com/portal-go/portal/internal/svcid"
	"github.com/portal-go/portal/internal/user"
	"github.com/portal-go/portal/internal/web"
	userpb "github.com/portal-go/portal/proto/user"
)

// RunService runs one service (web, user or system) in this process until ctx
// ends: ParseService reads args and the environment, Build builds the
// service, Serve runs it.
func RunService(ctx context.Context, name string, args []string, log *slog.Logger) error {
	s, err := ParseService(name, args, os.Stdout)
	if errors.Is(err, ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log = log.With("service", name)
	b, err := Build(ctx, s, log)
	if err != nil {
		return err
	}
	defer b.Close()
	return b.Serve(ctx, log)
}

// Built is one service built from its settings and not yet started.
type Built struct {
	// Service is the go-micro service, its handler or subscribers mounted.
	Service *platform.Service
	// Gateway is the web service's HTTP handler (nil for user and system).
	Gateway http.Handler
	// Metrics count the service's calls (and, for web, HTTP requests).
	Metrics *platform.Metrics
	// link is the NATS broker's connection state (nil: another broker).
	link     *platform.NATSLink
	settings ServiceSettings
	closers  []func()
}

// Close closes what the service opened (store, config, streams), last
// opened first. Call it after the service has stopped.
func (b *Built) Close() {
	for i := len(b.closers) - 1; i >= 0; i-- {
		b.closers[i]()
	}
	b.closers = nil
}

func (b *Built) onClose(f func()) { b.closers = append(b.closers, f) }

// deps are what every service's builder needs besides its settings.
type deps struct {
	cfg      *config.Center
	keys     pauth.Keys
	verifier auth.Auth
}

// builders build each service on a Built whose Service is made; the embedded
// mode mounts the same handlers (mountUser, mountSystem, mountWeb).
var builders = map[string]func(context.Context, *Built, deps, *slog.Logger) error{
	"user":   buildUser,
	"system": buildSystem,
	"web":    buildWeb,
}

// Build builds the service s names, ready to Start (or Serve). On an error
// whatever it opened is closed.
func Build(ctx context.Context, s ServiceSettings, log *slog.Logger) (_ *Built, err error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if err := connectEtcd(ctx, &s, log); err != nil {
		return nil, err
	}
	b := &Built{Metrics: platform.NewMetrics(), settings: s}
	defer func() {
		if err != nil {
			b.Close()
		}
	}()
	if b.Service, err = newService(s, b.Metrics, log); err != nil {
		return nil, err
	}
	// Before the broker connects (Start): reconnect to NATS for as long as
	// the process lives, with the credentials connectNATS checked.
	natsAuth, err := connectNATS(&s, log)
	if err != nil {
		return nil, err
	}
	if b.link, err = platform.UseNATSLink(s.Broker, s.NATSReconnectWait, log, natsAuth...); err != nil {
		return nil, err
	}
	proof, err := s.Edge.clientProof(s.DataDir, log)
	if err != nil {
		return nil, err
	}
	b.Service.UseClientProof(proof)
	d, err := openDeps(b, log)
	if err != nil {
		return nil, err
	}
	if err := builders[s.Name](ctx, b, d, log); err != nil {
		return nil, err
	}
	return b, nil
}

// Serve starts the service (and its side listeners: pprof, metrics), serves
// until ctx ends and stops it. The metrics listener starts before the
// service, so that /readyz says "not serving" until it does, and stops
// after it, so that it says so again while the service drains.
func (b *Built) Serve(ctx context.Context, log *slog.Logger) error {
	s := b.settings
	if s.Profile == "http" {
		ps, err := startSide("pprof", s.ProfileAddress, pprofMux(), log)
		if err != nil {
			return err
		}
		defer ps.stop()
	}
	if s.MetricsAddress != "" {
		ms, err := startSide("metrics", s.MetricsAddress, metricsMux(b.Metrics, b.Service), log)
		if err != nil {
			return err
		}
		defer ms.stop()
	}
	return serve(ctx, Options{HTTPAddress: s.HTTPAddress}, log, b.Gateway, b.Service)
}

// drainDelay is how long a stopping service of the one-service mode stays
// up after leaving the registry (platform.Plugins.DrainDelay). Other
// processes learn of a deregistration through their registry watch (etcd:
// milliseconds); a second covers a slow one.
const drainDelay = time.Second

// newService makes the go-micro service s describes: its plugins, TLS,
// registration, retries and tracing.
func newService(s ServiceSettings, m *platform.Metrics, log *slog.Logger) (*platform.Service, error) {
	t, err := platform.LoadTLSFiles(s.TLSCertFile, s.TLSKeyFile, s.TLSCAFile)
	if err != nil {
		return nil, fmt.Errorf("--tls_cert_file, --tls_key_file, --tls_ca_file (PORTAL_TLS_CERT_FILE, PORTAL_TLS_KEY_FILE, PORTAL_TLS_CA_FILE): %w", err)
	}
	if t != nil && t.Service() != s.Name {
		return nil, fmt.Errorf("--tls_cert_file %s names service %q (DNS SAN <service>.%s), not %q: callers check that name (docs/tls.md; portal certs makes one per service)", s.TLSCertFile, t.Service(), svcid.Domain, s.Name)
	}
	logTLS(t != nil, s, log)
	drain := drainDelay
	if s.Name == "web" {
		drain = 0 // serves no RPC: nothing to drain
	}
	svc := platform.NewService(s.Name, platform.Plugins{
		Registry: s.Registry, Broker: s.Broker, RPC: s.RPC, TLS: t, Metrics: m, DrainDelay: drain,
	}, log)
	if err := svc.Server().Init(s.Server.options()...); err != nil {
		return nil, err
	}
	if err := svc.Client().Init(s.Calls.options()...); err != nil {
		return nil, err
	}
	tracing, err := platform.NewTracing(s.TraceEndpoint)
	if err != nil {
		return nil, fmt.Errorf("--trace_endpoint (PORTAL_TRACE_ENDPOINT): %w", err)
	}
	log.Info("plugins",
		"registry", s.Registry.String(), "registry_address", strings.Join(s.Registry.Options().Addrs, ","),
		"broker", s.Broker.String(), "broker_address", natsx.Redact(s.Broker.Address()),
		"rpc", s.RPC, "register_ttl", svc.Server().Options().RegisterTTL, "traces", tracing.String())
	if s.Registry.String() == "mdns" {
		log.Warn("registry is mdns (go-micro's default): multicast on the local network; set MICRO_REGISTRY=etcd")
	}
	return svc, svc.UseTracing(tracing)
}

// logTLS says whether RPC is encrypted.
func logTLS(on bool, s ServiceSettings, log *slog.Logger) {
	if !on {
		log.Warn("RPC between services is not encrypted: set --tls_cert_file, --tls_key_file and --tls_ca_file for mutual TLS (docs/tls.md)")
		return
	}
	log.Info("RPC: mutual TLS", "cert", s.TLSCertFile, "ca", s.TLSCAFile)
}

// options are the server options s sets: Portal's registration TTL and
// interval where unset, and go-micro's server flags.
func (s ServerSettings) options() []server.Option {
	o := []server.Option{
		server.RegisterTTL(orDefault(s.RegisterTTL, registerTTL)),
		server.RegisterInterval(orDefault(s.RegisterInterval, registerInterval)),
		addMetadata(s.Metadata),
	}
	for _, f := range []struct {
		v   string
		opt func(string) server.Option
	}{{s.Address, server.Address}, {s.Advertise, server.Advertise}, {s.ID, server.Id}} {
		if f.v != "" {
			o = append(o, f.opt(f.v))
		}
	}
	return o
}

// addMetadata adds md to the node's metadata (server.Metadata would replace
// the version, description and pid NewService puts there).
func addMetadata(md map[string]string) server.Option {
	return func(o *server.Options) {
		if o.Metadata == nil {
			o.Metadata = map[string]string{}
		}
		for k, v := range md {
			o.Metadata[k] = v
		}
	}
}

// orDefault is d, or def when d is zero.
func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// options are the client options c sets over Portal's.
func (c CallSettings) options() []client.Option {
	var o []client.Option
	if c.Retries != nil {
		o = append(o, client.Retries(*c.Retries))
	}
	if c.RequestTimeout > 0 {
		o = append(o, client.RequestTimeout(c.RequestTimeout))
	}
	if c.PoolSize > 0 {
		o = append(o, client.PoolSize(c.PoolSize))
	}
	if c.PoolTTL > 0 {
		o = append(o, client.PoolTTL(c.PoolTTL))
	}
	return o
}

// openDeps opens the config center and reads the token keys.
func openDeps(b *Built, log *slog.Logger) (deps, error) {
	cfg, err := openConfig(b.settings, log)
	if err != nil {
		return deps{}, err
	}
	b.onClose(func() { cfg.Close() })
	log.Info("config", "source", cfg.Source())
	keys, err := serviceKeys(b.settings, log)
	if err != nil {
		return deps{}, err
	}
	verifier, err := pauth.NewJWT(pauth.Keys{Public: keys.Public}.Options()...)
	return deps{cfg: cfg, keys: keys, verifier: verifier}, err
}

// buildUser mounts the user service: its store, audit stream and the
// private key that signs tokens.
func buildUser(ctx context.Context, b *Built, d deps, log *slog.Logger) error {
	st, k, stream, err := storeAndStream(ctx, b, log)
	if err != nil {
		return err
	}
	minter, err := pauth.NewJWT(d.keys.Options()...)
	if err != nil {
		return err
	}
	issuer := issuerOf(b.settings)
	if b.settings.Issuer == "" {
		log.Info("OpenID issuer derived from --http_address; set --issuer (PORTAL_ISSUER) to the public https URL, the same on every user instance", "issuer", issuer)
	}
	sender, err := mailSender(b.settings.DataDir, os.Getenv, log)
	if err != nil {
		return err
	}
	h, err := mountUser(b.Service, st, k, minter, d.verifier, d.cfg, b.settings.AdminPassword, issuer, stream, sender, b.link.Flush, log)
	if err != nil {
		return err
	}
	if b.settings.Store == nil {
		// The command line cannot open the file this process holds.
		serveAdminSocket(b.Service, b.settings.DataDir, h, log)
	}
	return nil
}

// buildSystem mounts the system service: its store (the audit log) and the
// audit stream it consumes.
func buildSystem(ctx context.Context, b *Built, d deps, log *slog.Logger) error {
	st, k, stream, err := storeAndStream(ctx, b, log)
	if err != nil {
		return err
	}
	return mountSystem(b.Service, b.settings.Registry, d.verifier, d.cfg, st, k, stream, log)
}

// buildWeb mounts the gateway and its cache.
func buildWeb(_ context.Context, b *Built, d deps, log *slog.Logger) error {
	c, err := webCache(b.settings, log)
	if err != nil {
		return err
	}
	if cl, ok := c.(io.Closer); ok {
		b.onClose(func() { cl.Close() })
	}
	gw, err := mountWeb(b.Service, b.settings.Edge.webOptions(web.Options{
		Auth: d.verifier, Config: d.cfg, Cache: c, Revocations: b.link, Log: log, Metrics: b.Metrics,
		Issuer: issuerOf(b.settings),
	}))
	if err != nil {
		return err
	}
	b.Gateway = gw.Handler()
	return nil
}

// issuerOf is the OpenID issuer: --issuer, else derived from --http_address.
func issuerOf(s ServiceSettings) string {
	if s.Issuer != "" {
		return s.Issuer
	}
	return sso.DefaultIssuer(s.HTTPAddress)
}

// userHealth is the user service's registration check: its store answers.
func userHealth(h *user.Handler) func(context.Context) error {
	return func(ctx context.Context) error {
		return h.Health(ctx, &userpb.HealthRequest{}, &userpb.HealthResponse{})
	}
}

// webCache is the gateway's cache: in-process, Redis shared by every gateway
// (bounded by timeouts: the gateway treats a failed lookup as a miss), or
// none, so that every request makes the RPC and the store reads.
func webCache(s ServiceSettings, log *slog.Logger) (cache.Cache, error) {
	switch s.Cache {
	case "memory", "":
		log.Info("cache: memory")
		return platform.NewMemoryCache(time.Minute), nil
	case "redis":
		opts, err := dialRedis(strings.Split(s.CacheAddress, ","), s.RedisCAFile, "PORTAL_CACHE_ADDRESS", log)
		if err != nil {
			return nil, err
		}
		log.Info("cache: redis", "redis", redisx.Describe(opts))
		return redisx.NewCache(opts), nil
	case "none":
		log.Info("cache: none: every request asks the user service")
		return platform.NewNoCache(), nil
	}
	return nil, fmt.Errorf("PORTAL_CACHE %q: memory, redis or none", s.Cache)
}

// openConfig opens the config center MICRO_CONFIG names: etcd, or (unset)
// the watched yaml file.
func openConfig(s ServiceSettings, log *slog.Logger) (*config.Center, error) {
	switch s.ConfigSource {
	case "":
		return config.OpenFile(s.ConfigFile, log)
	case "etcd":
		cfg, err := s.configEtcd().Config()
		if err != nil {
			return nil, err
		}
		return config.OpenEtcd(cfg, config.EtcdKey, log)
	}
	return nil, fmt.Errorf("MICRO_CONFIG %q: Portal's config center is etcd, or a file when unset", s.ConfigSource)
}

// serviceKeys returns the token keys: from flags or MICRO_AUTH_* first; else
// the user service loads (or makes) them in the data dir, and the others read
// the public key it wrote there (one host only).
func serviceKeys(s ServiceSettings, log *slog.Logger) (pauth.Keys, error) {
	if s.Name == "user" {
		return userKeys(s, log)
	}
	if s.PrivateKey != "" {
		return pauth.Keys{}, fmt.Errorf("the %s service must not hold the private key (MICRO_AUTH_PRIVATE_KEY): only user signs tokens", s.Name)
	}
	if s.PublicKey != "" {
		return pauth.Keys{Public: s.PublicKey}, nil
	}
	pub, err := pauth.ReadPublicKey(s.DataDir)
	if err != nil {
		return pauth.Keys{}, fmt.Errorf("no public key: set MICRO_AUTH_PUBLIC_KEY (base64 of the PEM), or start the user service first with the same --data_dir: %w", err)
	}
	return pauth.Keys{Public: pub}, nil
}

// userKeys are the user service's keys: both given, or those in the data
// dir.
func userKeys(s ServiceSettings, log *slog.Logger) (pauth.Keys, error) {
	if s.PublicKey == "" && s.PrivateKey == "" {
		return loadKeys(Options{DataDir: s.DataDir}, log)
	}
	if s.PublicKey == "" || s.PrivateKey == "" {
		return pauth.Keys{}, errors.New("the user service signs tokens: give both MICRO_AUTH_PUBLIC_KEY and MICRO_AUTH_PRIVATE_KEY, or neither")
	}
	return pauth.Keys{Public: s.PublicKey, Private: s.PrivateKey}, nil
}

// serviceStore returns the store MICRO_STORE chose, made safe to use: Redis
// with timeouts and keys under "portal:<service>:"; when it is unset, the
// embedded file store in the data dir rather than go-micro's memory store.
// The kv.Store, where the store has one, makes conditional writes and index
// updates atomic across every instance sharing the store; nil elsewhere.
func serviceStore(s ServiceSettings, log *slog.Logger) (store.Store, kv.Store, error) {
	switch {
	case s.Store == nil:
		dir := filepath.Join(s.DataDir, "store")
		log.Info("store: file (MICRO_STORE unset)", "dir", dir)
		fs, err := filestore.New(dir, store.Database(s.Name), store.Table(s.Name))
		if err != nil {
			return nil, nil, err
		}
		return fs, fs, nil
	case s.Store.String() == "redis":
		return redisStore(s.Name, s.RedisCAFile, s.Store, log)
	}
	log.Warn("store: "+s.Store.String()+": username uniqueness holds within this process only", "store", s.Store.String())
	return s.Store, nil, s.Store.Init(store.Table(s.Name))
}

// redisStore bounds the redis store plugin st, keeps service name's keys
// under "portal:<name>:", and writes them atomically with their indexes
// through kv.Redis, on the Redis the address and caFile name (dialRedis).
func redisStore(name, caFile string, st store.Store, log *slog.Logger) (store.Store, kv.Store, error) {
	opts, err := dialRedis(st.Options().Nodes, caFile, "MICRO_STORE_ADDRESS", log)
	if err != nil {
		return nil, nil, err
	}
	table := "portal:" + name + ":"
	if err := st.Init(store.Table(table), redisstore.WithRedisOptions(opts)); err != nil {
		return nil, nil, err
	}
	log.Info("store: redis", "redis", redisx.Describe(opts), "table", table)
	return st, kv.NewRedis(goredis.NewUniversalClient(&opts), table, 2*redisx.IOTimeout), nil
}

// storeAndStream opens what user and system keep and publish: the service's
// store (swept, and its dir checked for readiness, when it is a file) and
// the audit stream; b closes both.
func storeAndStream(ctx context.Context, b *Built, log *slog.Logger) (store.Store, kv.Store, eventStream, error) {
	st, k, err := serviceStore(b.settings, log)
	if err != nil {
		return nil, nil, nil, err
	}
	b.onClose(func() { st.Close() })
	if r, ok := k.(*kv.Redis); ok {
		b.onClose(func() { r.Close() })
	}
	if b.settings.Store == nil {
		b.Service.AddCheck(dataDirCheck(b.settings.DataDir))
	}
	sweepFile(ctx, st, log)
	stream, err := auditStream(b.settings, log)
	if err != nil {
		return nil, nil, nil, err
	}
	b.onClose(func() { stream.Close() })
	return st, k, stream, nil
}

// eventStream is an audit stream that the process closes at its end.
type eventStream interface {
	events.Stream
	Close() error
}

// auditStream is the stream audit entries travel on, as --events says: NATS
// JetStream (durable: entries wait there while system is down), or memory,
// which reaches no other process. Unset: nats when the broker is NATS, on
// the broker's addresses.
func auditStream(s ServiceSettings, log *slog.Logger) (eventStream, error) {
	kind := s.Events
	if kind == "" && s.BrokerName == "nats" {
		kind = "nats"
	}
	switch kind {
	case "memory", "":
		log.Warn("events: memory: audit entries reach no other process; the audit log keeps only what this process publishes and consumes (set --events nats)")
		return audit.NewMemoryStream(0), nil
	case "nats":
		ns := s.eventsNATS()
		opts, err := ns.Connect()
		if err != nil {
			return nil, fmt.Errorf("--events_address (PORTAL_EVENTS_ADDRESS): %w", err)
		}
		urls, _ := ns.Servers()
		log.Info("events: nats jetstream", "nats", ns.Describe())
		return audit.NewNATSStream(strings.Join(urls, ","), audit.NATSOptions{Name: "portal-" + s.Name, Log: log, Connect: opts})
	}
	return nil, fmt.Errorf("--events %q (PORTAL_EVENTS): memory or nats", kind)
}

// sweepFile drops expired records from a file store until ctx ends; other
// stores expire records themselves.
func sweepFile(ctx context.Context, st store.Store, log *slog.Logger) {
	if fs, ok := st.(*filestore.Store); ok {
		go sweep(ctx, fs, log)
	}
}
