package portal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	rediscache "github.com/go-micro/plugins/v4/cache/redis"
	redisstore "github.com/go-micro/plugins/v4/store/redis"
	goredis "github.com/go-redis/redis/v8"
	"github.com/urfave/cli/v2"
	"go-micro.dev/v4"
	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/cache"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/events"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"
	"go-micro.dev/v4/store"

	// Plugins go-micro's cmd can choose by name (MICRO_REGISTRY=etcd, ...).
	_ "github.com/go-micro/plugins/v4/broker/nats"
	_ "github.com/go-micro/plugins/v4/client/grpc"
	_ "github.com/go-micro/plugins/v4/registry/etcd"
	_ "github.com/go-micro/plugins/v4/server/grpc"

	"github.com/portal-go/portal/internal/audit"
	pauth "github.com/portal-go/portal/internal/auth"
	"github.com/portal-go/portal/internal/config"
	"github.com/portal-go/portal/internal/filestore"
	"github.com/portal-go/portal/internal/platform"
	"github.com/portal-go/portal/internal/system"
	"github.com/portal-go/portal/internal/user"
	"github.com/portal-go/portal/internal/web"
	systempb "github.com/portal-go/portal/proto/system"
	userpb "github.com/portal-go/portal/proto/user"
)

// Services are the names RunService accepts.
var Services = []string{"web", "user", "system"}

// serviceFlags are Portal's own settings in the one-service mode, parsed by
// go-micro's cmd together with its MICRO_* flags.
type serviceFlags struct {
	httpAddress, dataDir, configFile string
	adminPassword                    string
	publicKey, privateKey            string
	storeName                        string
	configSource, configAddress      string
	registryAddress                  string
	cacheName, cacheAddress          string
	ttlSet, intervalSet, retriesSet  bool
	server, client                   string
	// Mutual TLS between services: all three or none.
	tlsCertFile, tlsKeyFile, tlsCAFile string
	// Observability: /metrics (and /healthz) on a listener of their own;
	// the gateway's /metrics readable by anyone; where pprof listens.
	metricsAddress, profileAddress string
	edge                           Edge
	traceEndpoint                  string
	// The audit stream: memory or nats, and the NATS servers.
	eventsName, eventsAddress string
	brokerName                string
}

// cliFlags are the flags RunService adds to go-micro's own.
var cliFlags = []cli.Flag{
	&cli.StringFlag{Name: "http_address", Value: ":8080", EnvVars: []string{"PORTAL_HTTP_ADDRESS"}, Usage: "web: where the gateway listens"},
	&cli.StringFlag{Name: "data_dir", Value: "./data", EnvVars: []string{"PORTAL_DATA_DIR"}, Usage: "the file store (when MICRO_STORE is unset) and generated keys"},
	&cli.StringFlag{Name: "config_file", Value: "portal.yaml", EnvVars: []string{"PORTAL_CONFIG_FILE"}, Usage: "yaml config file, watched; built-in defaults when missing (when MICRO_CONFIG is unset)"},
	&cli.StringFlag{Name: "cache", Value: "memory", EnvVars: []string{"PORTAL_CACHE"}, Usage: "web: the gateway's session cache: memory, redis, or none (every request asks the user service)"},
	&cli.StringFlag{Name: "cache_address", Value: "127.0.0.1:6379", EnvVars: []string{"PORTAL_CACHE_ADDRESS"}, Usage: "web: Redis addresses of the cache, comma separated"},
	&cli.StringFlag{Name: "config_address", EnvVars: []string{"PORTAL_CONFIG_ADDRESS"}, Usage: "etcd addresses of the config center, comma separated (MICRO_CONFIG=etcd; default: the registry's)"},
	&cli.StringFlag{Name: "tls_cert_file", EnvVars: []string{"PORTAL_TLS_CERT_FILE"}, Usage: "mutual TLS between services: this service's PEM certificate, to serve and to call (with --tls_key_file and --tls_ca_file; see docs/tls.md)"},
	&cli.StringFlag{Name: "tls_key_file", EnvVars: []string{"PORTAL_TLS_KEY_FILE"}, Usage: "mutual TLS: the PEM private key of --tls_cert_file"},
	&cli.StringFlag{Name: "tls_ca_file", EnvVars: []string{"PORTAL_TLS_CA_FILE"}, Usage: "mutual TLS: the PEM CA certificate that signs every service's certificate; callers and servers not signed by it are refused"},
	&cli.StringFlag{Name: "metrics_address", EnvVars: []string{"PORTAL_METRICS_ADDRESS"}, Usage: "serve GET /metrics, /healthz and /readyz (with each check's error) on this address, unauthenticated (default: off; the gateway's own port serves /metrics only with --metrics_token)"},
	&cli.StringFlag{Name: "trace_endpoint", EnvVars: []string{"PORTAL_TRACE_ENDPOINT"}, Usage: "export spans over OTLP/HTTP to this receiver's base URL, e.g. http://127.0.0.1:4318 (default: OTEL_EXPORTER_OTLP_ENDPOINT, else no export)"},
	&cli.StringFlag{Name: "profile_address", Value: DefaultProfileAddress, EnvVars: []string{"PORTAL_PROFILE_ADDRESS"}, Usage: "with --profile http (MICRO_DEBUG_PROFILE=http): where net/http/pprof listens; loopback only"},
	&cli.StringFlag{Name: "events", EnvVars: []string{"PORTAL_EVENTS"}, Usage: "user, system: the audit log's event stream, memory or nats (NATS JetStream, durable; default: nats when --broker is nats, else memory, which reaches no other process)"},
	&cli.StringFlag{Name: "events_address", EnvVars: []string{"PORTAL_EVENTS_ADDRESS"}, Usage: "NATS servers of --events nats, comma separated (default: the broker's, else nats://127.0.0.1:4222)"},
}

// Redis client bounds: the store plugin ignores contexts, so these are what
// keeps a hung Redis from holding a request for go-redis's default 12 s.
const (
	redisDialTimeout = time.Second
	redisIOTimeout   = 500 * time.Millisecond
)

// RunService runs one service (web, user or system) in this process until ctx
// ends. Plugins are chosen the go-micro way, by flags in args or MICRO_*
// environment, through go-micro's cmd.
func RunService(ctx context.Context, name string, args []string, log *slog.Logger) error {
	log = log.With("service", name)
	var f serviceFlags
	parsed := false
	// go-micro's defaults, for cmd to replace as the flags say.
	rpc := rpcChoice(args)
	metrics := platform.NewMetrics()
	drain := drainDelay
	if name == "web" {
		drain = 0 // serves no RPC: nothing to drain
	}
	svc := platform.NewService(name, platform.Plugins{
		Registry: registry.DefaultRegistry,
		Broker:   broker.DefaultBroker,
		RPC:      rpc,
		Metrics:  metrics,
		// Other processes learn of a deregistration through their registry
		// watch (etcd: milliseconds); a second covers a slow one.
		DrainDelay: drain,
	}, log)

	// go-micro's cmd parses os.Args: give it this service's arguments only.
	os.Args = append([]string{os.Args[0]}, args...)
	svc.Init(
		micro.Flags(append(cliFlags, EdgeFlags...)...),
		micro.Action(func(c *cli.Context) error {
			parsed = true
			f = serviceFlags{
				httpAddress: c.String("http_address"), dataDir: c.String("data_dir"), configFile: c.String("config_file"),
				adminPassword: os.Getenv("PORTAL_ADMIN_PASSWORD"),
				publicKey:     c.String("auth_public_key"), privateKey: c.String("auth_private_key"),
				storeName:    c.String("store"),
				configSource: c.String("config"), configAddress: c.String("config_address"),
				registryAddress: c.String("registry_address"),
				cacheName:       c.String("cache"), cacheAddress: c.String("cache_address"),
				ttlSet: c.IsSet("register_ttl"), intervalSet: c.IsSet("register_interval"), retriesSet: c.IsSet("client_retries"),
				server: c.String("server"), client: c.String("client"),
				tlsCertFile: c.String("tls_cert_file"), tlsKeyFile: c.String("tls_key_file"), tlsCAFile: c.String("tls_ca_file"),
				metricsAddress: c.String("metrics_address"),
				profileAddress: c.String("profile_address"),
				traceEndpoint:  c.String("trace_endpoint"),
				eventsName:     c.String("events"), eventsAddress: c.String("events_address"),
				brokerName: c.String("broker"),
			}
			var err error
			if f.edge, err = EdgeFromCLI(c); err != nil {
				return err
			}
			// Mutual TLS, now that the flags are known and before anything
			// listens or dials. An error here ends the process: go-micro's
			// cmd prints it and exits 1.
			t, err := platform.LoadTLSFiles(f.tlsCertFile, f.tlsKeyFile, f.tlsCAFile)
			if err != nil {
				return fmt.Errorf("--tls_cert_file, --tls_key_file, --tls_ca_file (PORTAL_TLS_CERT_FILE, PORTAL_TLS_KEY_FILE, PORTAL_TLS_CA_FILE): %w", err)
			}
			if t == nil {
				log.Warn("RPC between services is not encrypted: set --tls_cert_file, --tls_key_file and --tls_ca_file for mutual TLS (docs/tls.md)")
				return nil
			}
			log.Info("RPC: mutual TLS", "cert", f.tlsCertFile, "ca", f.tlsCAFile)
			return svc.UseTLS(*t)
		}),
	)
	if !parsed {
		return nil // --help: go-micro's cmd printed it
	}
	if err := checkRPC(f, rpc); err != nil {
		return err
	}
	opts := svc.Options()
	if opts.Profile != nil && opts.Profile.String() != "noop" {
		// go-micro starts its profile only from Service.Run, which Portal
		// does not call; its http profile would listen on every interface.
		if opts.Profile.String() != "http" {
			return fmt.Errorf("--profile %q (MICRO_DEBUG_PROFILE): Portal supports http only (pprof on --profile_address)", opts.Profile.String())
		}
		if err := checkProfileAddress(f.profileAddress); err != nil {
			return err
		}
		ps, err := startSide("pprof", f.profileAddress, pprofMux(), log)
		if err != nil {
			return err
		}
		defer ps.stop()
	}
	// cmd.Init gives the server go-micro's defaults (60 s / 30 s): a dead node
	// would stay registered a minute. Ours, unless set explicitly.
	if !f.ttlSet || !f.intervalSet {
		var so []server.Option
		if !f.ttlSet {
			so = append(so, server.RegisterTTL(10*time.Second))
		}
		if !f.intervalSet {
			so = append(so, server.RegisterInterval(5*time.Second))
		}
		if err := svc.Server().Init(so...); err != nil {
			return err
		}
	}
	// cmd.Init set go-micro's default of 5 retries: Portal's count unless
	// MICRO_CLIENT_RETRIES says otherwise, and Portal's rule always.
	if err := svc.Client().Init(platformRetries(!f.retriesSet)...); err != nil {
		return err
	}
	tracing, err := platform.NewTracing(f.traceEndpoint)
	if err != nil {
		return fmt.Errorf("--trace_endpoint (PORTAL_TRACE_ENDPOINT): %w", err)
	}
	if err := svc.UseTracing(tracing); err != nil {
		return err
	}
	cfg, err := openConfig(f, log)
	if err != nil {
		return err
	}
	defer cfg.Close()
	log.Info("plugins",
		"registry", opts.Registry.String(), "registry_address", strings.Join(opts.Registry.Options().Addrs, ","),
		"broker", opts.Broker.String(), "broker_address", opts.Broker.Address(),
		"server", svc.Server().String(), "client", svc.Client().String(),
		"config", cfg.Source(), "register_ttl", svc.Server().Options().RegisterTTL, "traces", tracing.String())
	if opts.Registry.String() == "mdns" {
		log.Warn("registry is mdns (go-micro's default): multicast on the local network; set MICRO_REGISTRY=etcd")
	}

	proof, err := f.edge.clientProof(f.dataDir, log)
	if err != nil {
		return err
	}
	svc.UseClientProof(proof)
	keys, err := serviceKeys(name, f, log)
	if err != nil {
		return err
	}
	verifier, err := pauth.NewJWT(pauth.Keys{Public: keys.Public}.Options()...)
	if err != nil {
		return err
	}
	var gateway http.Handler // web only
	switch name {
	case "user":
		st, claimer, stream, closeAll, err := storeAndStream(ctx, name, f, opts, log)
		if err != nil {
			return err
		}
		defer closeAll()
		minter, err := pauth.NewJWT(keys.Options()...)
		if err != nil {
			return err
		}
		if err := mountUser(svc, st, claimer, minter, verifier, cfg, f.adminPassword, stream, log); err != nil {
			return err
		}
	case "system":
		st, _, stream, closeAll, err := storeAndStream(ctx, name, f, opts, log)
		if err != nil {
			return err
		}
		defer closeAll()
		if err := mountSystem(svc, opts.Registry, verifier, cfg, st, stream, log); err != nil {
			return err
		}
	case "web":
		cache, err := webCache(f, log)
		if err != nil {
			return err
		}
		gw, err := mountWeb(svc, f.edge.webOptions(web.Options{
			Auth:    verifier,
			Config:  cfg,
			Cache:   cache,
			Log:     log,
			Metrics: metrics,
		}))
		if err != nil {
			return err
		}
		gateway = gw.Handler()
	default:
		return fmt.Errorf("unknown service %q (want one of %s)", name, strings.Join(Services, ", "))
	}
	// Listening before the service starts, so that /readyz says "not
	// serving" until it does; stopped after it, so that it says so again
	// while the service drains.
	if f.metricsAddress != "" {
		ms, err := startSide("metrics", f.metricsAddress, metricsMux(metrics, svc), log)
		if err != nil {
			return err
		}
		defer ms.stop()
	}
	return serve(ctx, Options{HTTPAddress: f.httpAddress}, log, gateway, svc)
}

// drainDelay is how long a stopping service of the one-service mode stays
// up after leaving the registry (platform.Plugins.DrainDelay).
const drainDelay = time.Second

// userHealth is the user service's registration check: its store answers.
func userHealth(h *user.Handler) func(context.Context) error {
	return func(ctx context.Context) error {
		return h.Health(ctx, &userpb.HealthRequest{}, &userpb.HealthResponse{})
	}
}

// systemHealth is the system service's registration check: the registry
// answers.
func systemHealth(h *system.Handler) func(context.Context) error {
	return func(ctx context.Context) error {
		return h.Health(ctx, &systempb.HealthRequest{}, &systempb.HealthResponse{})
	}
}

// webCache is the gateway's cache: in-process, Redis shared by every gateway
// (bounded by timeouts: the gateway treats a failed lookup as a miss), or
// none, so that every request makes the RPC and the store reads.
func webCache(f serviceFlags, log *slog.Logger) (cache.Cache, error) {
	switch f.cacheName {
	case "memory", "":
		log.Info("cache: memory")
		return platform.NewMemoryCache(time.Minute), nil
	case "redis":
		addrs := redisAddrs(strings.Split(f.cacheAddress, ","))
		log.Info("cache: redis", "addrs", strings.Join(addrs, ","))
		opts := redisOptions(addrs)
		return redisCache{Cache: rediscache.NewCache(rediscache.WithRedisOptions(opts)), cli: goredis.NewUniversalClient(&opts)}, nil
	case "none":
		log.Info("cache: none: every request asks the user service")
		return platform.NewNoCache(), nil
	}
	return nil, fmt.Errorf("PORTAL_CACHE %q: memory, redis or none", f.cacheName)
}

// redisCache is the redis cache plugin, plus reads of several keys in one
// MGET (web.MultiGetter): the plugin reads a key with GET and then TTL, so a
// request on a Redis-cached gateway cost three round trips instead of one.
type redisCache struct {
	cache.Cache
	cli goredis.UniversalClient
}

// GetMany implements web.MultiGetter: each value as the []byte the plugin's
// Get would return, nil where a key is missing.
func (c redisCache) GetMany(ctx context.Context, keys ...string) ([]interface{}, error) {
	vals, err := c.cli.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, err
	}
	out := make([]interface{}, len(vals))
	for i, v := range vals {
		if s, ok := v.(string); ok {
			out[i] = []byte(s)
		}
	}
	return out, nil
}

// redisAddrs turns go-micro style addresses (host:port or redis://host:port)
// into go-redis ones.
func redisAddrs(nodes []string) []string {
	var addrs []string
	for _, n := range nodes {
		if n = strings.TrimPrefix(strings.TrimSpace(n), "redis://"); n != "" {
			addrs = append(addrs, n)
		}
	}
	if len(addrs) == 0 {
		addrs = []string{"127.0.0.1:6379"}
	}
	return addrs
}

// redisOptions bound every Redis call Portal makes.
func redisOptions(addrs []string) goredis.UniversalOptions {
	return goredis.UniversalOptions{
		Addrs:       addrs,
		DialTimeout: redisDialTimeout, ReadTimeout: redisIOTimeout, WriteTimeout: redisIOTimeout,
		PoolTimeout: redisIOTimeout,
		// After a Redis restart the pool holds dead connections; each retry
		// drops one. Three, with short backoffs, ride that out while a
		// refused connection still fails in well under a second.
		MaxRetries: 3, MinRetryBackoff: 8 * time.Millisecond, MaxRetryBackoff: 64 * time.Millisecond,
	}
}

// openConfig opens the config center MICRO_CONFIG names: etcd, or (unset)
// the watched yaml file.
func openConfig(f serviceFlags, log *slog.Logger) (*config.Center, error) {
	switch f.configSource {
	case "":
		return config.OpenFile(f.configFile, log)
	case "etcd":
		addrs := f.configAddress
		if addrs == "" {
			addrs = f.registryAddress
		}
		if addrs == "" {
			addrs = "127.0.0.1:2379"
		}
		return config.OpenEtcd(strings.Split(addrs, ","), config.EtcdKey, log)
	}
	return nil, fmt.Errorf("MICRO_CONFIG %q: Portal's config center is etcd, or a file when unset", f.configSource)
}

// rpcChoice is the protocol MICRO_SERVER (or --server) asks for, read before
// go-micro's cmd parses it: cmd would otherwise swap in a fresh server, without
// Portal's handlers and wrappers, after they were set.
func rpcChoice(args []string) string {
	v := os.Getenv("MICRO_SERVER")
	for i, a := range args {
		if s, ok := strings.CutPrefix(a, "--server="); ok {
			v = s
		} else if a == "--server" && i+1 < len(args) {
			v = args[i+1]
		}
	}
	if v == "mucp" {
		return "mucp"
	}
	return "grpc"
}

// checkRPC refuses a server or client protocol other than the one the
// service was built with: gRPC (the default) or mucp, both ends the same.
func checkRPC(f serviceFlags, rpc string) error {
	for _, v := range []string{f.server, f.client} {
		if v != "" && v != rpc {
			return fmt.Errorf("MICRO_SERVER %q and MICRO_CLIENT %q: Portal's services speak grpc (default) or mucp, the same on both", f.server, f.client)
		}
	}
	if rpc == "mucp" && f.client != "mucp" {
		return errors.New("MICRO_SERVER=mucp needs MICRO_CLIENT=mucp: every service speaks one protocol")
	}
	return nil
}

// platformRetries re-applies Portal's retry policy after cmd.Init: which
// failures are retried, with no wait, and (withCount) how many times.
func platformRetries(withCount bool) []client.Option {
	opts := []client.Option{client.Retry(platform.Retry), client.Backoff(platform.NoBackoff)}
	if withCount {
		opts = append(opts, client.Retries(platform.Retries))
	}
	return opts
}

// serviceKeys returns the token keys: from flags or MICRO_AUTH_* first; else
// the user service loads (or makes) them in the data dir, and the others read
// the public key it wrote there (one host only).
func serviceKeys(name string, f serviceFlags, log *slog.Logger) (pauth.Keys, error) {
	if name == "user" {
		if f.publicKey != "" || f.privateKey != "" {
			if f.publicKey == "" || f.privateKey == "" {
				return pauth.Keys{}, errors.New("the user service signs tokens: give both MICRO_AUTH_PUBLIC_KEY and MICRO_AUTH_PRIVATE_KEY, or neither")
			}
			return pauth.Keys{Public: f.publicKey, Private: f.privateKey}, nil
		}
		return loadKeys(Options{DataDir: f.dataDir}, log)
	}
	if f.privateKey != "" {
		return pauth.Keys{}, fmt.Errorf("the %s service must not hold the private key (MICRO_AUTH_PRIVATE_KEY): only user signs tokens", name)
	}
	if f.publicKey != "" {
		return pauth.Keys{Public: f.publicKey}, nil
	}
	pub, err := pauth.ReadPublicKey(f.dataDir)
	if err != nil {
		return pauth.Keys{}, fmt.Errorf("no public key: set MICRO_AUTH_PUBLIC_KEY (base64 of the PEM), or start the user service first with the same --data_dir: %w", err)
	}
	return pauth.Keys{Public: pub}, nil
}

// serviceStore returns the store cmd chose, made safe to use: Redis with
// timeouts and keys under "portal:<service>:"; when MICRO_STORE is unset, the
// embedded file store in the data dir rather than go-micro's memory store.
// The claimer, where the store has one, makes username claims atomic across
// every instance sharing the store.
func serviceStore(name string, f serviceFlags, st store.Store, log *slog.Logger) (store.Store, user.Claimer, error) {
	switch {
	case f.storeName == "":
		log.Info("store: file (MICRO_STORE unset)", "dir", filepath.Join(f.dataDir, "store"))
		fs, err := filestore.New(filepath.Join(f.dataDir, "store"), store.Database(name), store.Table(name))
		if err != nil {
			return nil, nil, err
		}
		return fs, fs, nil
	case st.String() == "redis":
		addrs := redisAddrs(st.Options().Nodes)
		table := "portal:" + name + ":"
		opts := redisOptions(addrs)
		if err := st.Init(store.Table(table), redisstore.WithRedisOptions(opts)); err != nil {
			return nil, nil, err
		}
		log.Info("store: redis", "addrs", strings.Join(addrs, ","), "table", table)
		return st, &redisKeys{cli: goredis.NewUniversalClient(&opts), table: table}, nil
	}
	log.Warn("store: "+st.String()+": username uniqueness holds within this process only", "store", st.String())
	return st, nil, st.Init(store.Table(name))
}

// storeAndStream opens what user and system keep and publish: the service's
// store (swept, when it is a file) and the audit stream. closeAll closes both.
func storeAndStream(ctx context.Context, name string, f serviceFlags, opts micro.Options, log *slog.Logger) (store.Store, user.Claimer, eventStream, func(), error) {
	st, claimer, err := serviceStore(name, f, opts.Store, log)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	sweepFile(ctx, st, log)
	stream, err := auditStream(name, f, opts.Broker, log)
	if err != nil {
		st.Close()
		return nil, nil, nil, nil, err
	}
	return st, claimer, stream, func() { stream.Close(); st.Close() }, nil
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
func auditStream(name string, f serviceFlags, b broker.Broker, log *slog.Logger) (eventStream, error) {
	kind := f.eventsName
	if kind == "" {
		kind = "memory"
		if f.brokerName == "nats" {
			kind = "nats"
		}
	}
	switch kind {
	case "memory":
		log.Warn("events: memory: audit entries reach no other process; the audit log keeps only what this process publishes and consumes (set --events nats)")
		return audit.NewMemoryStream(0), nil
	case "nats":
		addr := f.eventsAddress
		if addr == "" && f.brokerName == "nats" {
			addr = strings.Join(b.Options().Addrs, ",")
		}
		if addr == "" {
			addr = "nats://127.0.0.1:4222"
		}
		log.Info("events: nats jetstream", "address", addr)
		return audit.NewNATSStream(addr, audit.NATSOptions{Name: "portal-" + name, Log: log})
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

// redisKeys does what the redis store plugin cannot, in the same key space
// (table glued to key): claim a key with SET NX (user.Claimer), read several
// keys with one MGET (user.Getter).
type redisKeys struct {
	cli   goredis.UniversalClient
	table string
}

// Claim implements user.Claimer.
func (c *redisKeys) Claim(key string, value []byte) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*redisIOTimeout)
	defer cancel()
	return c.cli.SetNX(ctx, c.table+key, value, 0).Result()
}

// Get implements user.Getter.
func (c *redisKeys) Get(keys ...string) ([][]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*redisIOTimeout)
	defer cancel()
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = c.table + k
	}
	vals, err := c.cli.MGet(ctx, full...).Result()
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(vals))
	for i, v := range vals {
		switch v := v.(type) {
		case string:
			out[i] = []byte(v)
		case nil:
		default:
			return nil, fmt.Errorf("MGET %s: unexpected %T", full[i], v)
		}
	}
	return out, nil
}
