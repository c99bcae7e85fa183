package portal

import (
	"errors"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"go-micro.dev/v4/auth"
	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/client"
	mconfig "go-micro.dev/v4/config"
	"go-micro.dev/v4/debug/profile"
	"go-micro.dev/v4/debug/trace"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/runtime"
	"go-micro.dev/v4/selector"
	"go-micro.dev/v4/server"
	"go-micro.dev/v4/store"
	"go-micro.dev/v4/transport"
	"go-micro.dev/v4/util/cmd"

	"github.com/portal-go/portal/internal/config"
	"github.com/portal-go/portal/internal/etcdx"
	"github.com/portal-go/portal/internal/natsx"
	"github.com/portal-go/portal/internal/platform"
)

// Services are the names RunService accepts.
var Services = []string{"web", "user", "system"}

// ServiceSettings are everything a one-service process is told: Portal's own
// flags and the go-micro plugins its flags and MICRO_* environment chose.
// ParseService fills them from a command line; a test may write them itself.
type ServiceSettings struct {
	// Name is the service: web, user or system.
	Name string
	// Registry and Broker are the plugins services find each other and
	// publish events through.
	Registry registry.Registry
	Broker   broker.Broker
	// Store is the store plugin MICRO_STORE chose; nil: the embedded file
	// store in DataDir.
	Store store.Store
	// BrokerName is MICRO_BROKER ("" for go-micro's default).
	BrokerName string
	// RPC is the protocol, "grpc" (default) or "mucp"; Client is what
	// MICRO_CLIENT asked for, which must agree.
	RPC, Client string
	// Profile is MICRO_DEBUG_PROFILE: "" (none) or "http", pprof on
	// ProfileAddress.
	Profile, ProfileAddress string
	// Server and Calls are the server's and client's go-micro settings.
	Server ServerSettings
	Calls  CallSettings

	HTTPAddress, DataDir, ConfigFile string
	// Issuer is the OpenID provider's public URL (user service).
	Issuer string
	// AdminPassword is PORTAL_ADMIN_PASSWORD: the first admin's (user).
	AdminPassword string
	// PublicKey and PrivateKey are MICRO_AUTH_*_KEY, base64 of PEM.
	PublicKey, PrivateKey string
	// ConfigSource is MICRO_CONFIG: "" (ConfigFile) or "etcd" at
	// ConfigAddress (default: the registry's, Etcd.Addrs).
	ConfigSource, ConfigAddress string
	// Cache is the gateway's cache: memory, redis (at CacheAddress) or none.
	Cache, CacheAddress string
	// Etcd is how the registry and config center reach etcd: TLS,
	// credentials, and the registry's addresses.
	Etcd etcdx.Settings
	// NATS is how the broker (and, on EventsAddress when set, the audit
	// stream) reach NATS: TLS, creds, and the broker's addresses.
	NATS natsx.Settings
	// RedisCAFile is PORTAL_REDIS_CA_FILE: the CA of the store's and
	// cache's Redis; it turns TLS on (as rediss:// does).
	RedisCAFile string
	// TLSCertFile, TLSKeyFile and TLSCAFile make RPC mutual TLS: all or none.
	TLSCertFile, TLSKeyFile, TLSCAFile string
	// MetricsAddress serves /metrics, /healthz, /readyz ("" off).
	MetricsAddress string
	// Edge: trusted proxies, HSTS, the metrics token, the gateway key.
	Edge Edge
	// TraceEndpoint is the OTLP/HTTP receiver spans go to.
	TraceEndpoint string
	// Events is the audit stream, memory or nats (at EventsAddress).
	Events, EventsAddress string
	// NATSReconnectWait bounds the wait between two attempts to reconnect
	// to NATS (0: platform.DefaultNATSReconnectWait).
	NATSReconnectWait time.Duration
	// serverFlag is MICRO_SERVER as given, which RPC must agree with.
	serverFlag string
}

// ServerSettings are the go-micro server flags Portal passes on.
type ServerSettings struct {
	// Address and Advertise: where the server listens and what it
	// registers ("" go-micro's choice).
	Address, Advertise, ID string
	// Metadata is added to the node's registry entry.
	Metadata map[string]string
	// RegisterTTL and RegisterInterval: Portal's 10 s and 5 s unless set.
	RegisterTTL, RegisterInterval time.Duration
}

// CallSettings are the go-micro client flags Portal passes on.
type CallSettings struct {
	// Retries is MICRO_CLIENT_RETRIES; nil: Portal's count.
	Retries *int
	// RequestTimeout, PoolSize and PoolTTL: zero leaves Portal's.
	RequestTimeout, PoolTTL time.Duration
	PoolSize                int
}

// Portal's registration TTL and interval, where go-micro's 60 s and 30 s
// would keep a dead node listed a minute.
const (
	registerTTL      = 10 * time.Second
	registerInterval = 5 * time.Second
)

// ErrHelp is ParseService's answer to --help: the help was printed.
var ErrHelp = errors.New("help shown")

// cliFlags are the flags Portal adds to go-micro's own.
var cliFlags = []cli.Flag{
	&cli.StringFlag{Name: "http_address", Value: ":8080", EnvVars: []string{"PORTAL_HTTP_ADDRESS"}, Usage: "web: where the gateway listens"},
	&cli.StringFlag{Name: "issuer", EnvVars: []string{"PORTAL_ISSUER"}, Usage: "user: the OpenID provider's public https URL, the same on every instance (default: derived from --http_address)"},
	&cli.StringFlag{Name: "data_dir", Value: "./data", EnvVars: []string{"PORTAL_DATA_DIR"}, Usage: "the file store (when MICRO_STORE is unset) and generated keys"},
	&cli.StringFlag{Name: "config_file", EnvVars: []string{"PORTAL_CONFIG_FILE"}, Usage: "yaml config file, watched; built-in defaults when missing (when MICRO_CONFIG is unset; default: ./portal.yaml when present, else portal.yaml in the data dir)"},
	&cli.StringFlag{Name: "cache", Value: "memory", EnvVars: []string{"PORTAL_CACHE"}, Usage: "web: the gateway's session cache: memory, redis, or none (every request asks the user service)"},
	&cli.StringFlag{Name: "cache_address", Value: "127.0.0.1:6379", EnvVars: []string{"PORTAL_CACHE_ADDRESS"}, Usage: "web: Redis addresses of the cache, comma separated"},
	&cli.StringFlag{Name: "config_address", EnvVars: []string{"PORTAL_CONFIG_ADDRESS"}, Usage: "etcd addresses of the config center, comma separated (MICRO_CONFIG=etcd; default: the registry's)"},
	&cli.StringFlag{Name: "tls_cert_file", EnvVars: []string{"PORTAL_TLS_CERT_FILE"}, Usage: "mutual TLS between services: this service's PEM certificate, to serve and to call (with --tls_key_file and --tls_ca_file; see docs/tls.md)"},
	&cli.StringFlag{Name: "tls_key_file", EnvVars: []string{"PORTAL_TLS_KEY_FILE"}, Usage: "mutual TLS: the PEM private key of --tls_cert_file"},
	&cli.StringFlag{Name: "tls_ca_file", EnvVars: []string{"PORTAL_TLS_CA_FILE"}, Usage: "mutual TLS: the PEM CA certificate that signs every service's certificate; callers and servers not signed by it are refused"},
	&cli.StringFlag{Name: "metrics_address", EnvVars: []string{"PORTAL_METRICS_ADDRESS"}, Usage: "serve GET /metrics, /healthz and /readyz (with each check's error) on this address, unauthenticated (default: off; the gateway's own port serves /metrics only with --metrics_token)"},
	&cli.StringFlag{Name: "etcd_ca_file", EnvVars: []string{"PORTAL_ETCD_CA_FILE"}, Usage: "etcd (registry, config center): the PEM CA that signs etcd's certificate; turns TLS on (as does an https:// registry address). Credentials: ETCD_USERNAME, ETCD_PASSWORD"},
	&cli.StringFlag{Name: "etcd_cert_file", EnvVars: []string{"PORTAL_ETCD_CERT_FILE"}, Usage: "etcd: a PEM client certificate, for an etcd that requires one (with --etcd_key_file)"},
	&cli.StringFlag{Name: "etcd_key_file", EnvVars: []string{"PORTAL_ETCD_KEY_FILE"}, Usage: "etcd: the PEM private key of --etcd_cert_file"},
	&cli.StringFlag{Name: "nats_ca_file", EnvVars: []string{"PORTAL_NATS_CA_FILE"}, Usage: "NATS (broker, audit stream): the PEM CA that signs the server's certificate; turns TLS on (as a tls:// address does). User and password or token go in the address: tls://user:password@host:4222"},
	&cli.StringFlag{Name: "nats_creds_file", EnvVars: []string{"PORTAL_NATS_CREDS_FILE"}, Usage: "NATS: a .creds file (user JWT and NKey seed) to log in with"},
	&cli.StringFlag{Name: "nats_nkey_file", EnvVars: []string{"PORTAL_NATS_NKEY_FILE"}, Usage: "NATS: a file holding an NKey user seed to log in with"},
	&cli.StringFlag{Name: "redis_ca_file", EnvVars: []string{"PORTAL_REDIS_CA_FILE"}, Usage: "Redis (store, cache): the PEM CA that signs Redis's certificate; turns TLS on (as a rediss:// address does). User and password go in the address: rediss://user:password@host:port"},
	&cli.StringFlag{Name: "trace_endpoint", EnvVars: []string{"PORTAL_TRACE_ENDPOINT"}, Usage: "export spans over OTLP/HTTP to this receiver's base URL, e.g. http://127.0.0.1:4318 (default: OTEL_EXPORTER_OTLP_ENDPOINT, else no export)"},
	&cli.StringFlag{Name: "profile_address", Value: DefaultProfileAddress, EnvVars: []string{"PORTAL_PROFILE_ADDRESS"}, Usage: "with --profile http (MICRO_DEBUG_PROFILE=http): where net/http/pprof listens; loopback only"},
	&cli.StringFlag{Name: "events", EnvVars: []string{"PORTAL_EVENTS"}, Usage: "user, system: the audit log's event stream, memory or nats (NATS JetStream, durable; default: nats when --broker is nats, else memory, which reaches no other process)"},
	&cli.StringFlag{Name: "events_address", EnvVars: []string{"PORTAL_EVENTS_ADDRESS"}, Usage: "NATS servers of --events nats, comma separated (default: the broker's, else nats://127.0.0.1:4222)"},
	&cli.DurationFlag{Name: "nats_reconnect_wait", Value: platform.DefaultNATSReconnectWait, EnvVars: []string{"PORTAL_NATS_RECONNECT_WAIT"}, Usage: "with --broker nats: the longest wait between two attempts to reconnect to NATS (they never stop)"},
}

// plugins are the slots go-micro's cmd fills as the flags say. Each starts
// as a fresh instance, never go-micro's package singleton, so that parsing
// changes nothing outside the value it returns.
type plugins struct {
	auth      auth.Auth
	broker    broker.Broker
	client    client.Client
	config    mconfig.Config
	profile   profile.Profile
	registry  registry.Registry
	runtime   runtime.Runtime
	selector  selector.Selector
	server    server.Server
	store     store.Store
	tracer    trace.Tracer
	transport transport.Transport
}

// ParseService parses the command line of `portal <name>` (args without the
// program and service names) and the MICRO_* and PORTAL_* environment. It
// runs go-micro's own cmd, so every go-micro flag means what go-micro says,
// on args given explicitly: go-micro's service.Init would parse os.Args.
// --help prints the help to out and returns ErrHelp.
func ParseService(name string, args []string, out io.Writer) (ServiceSettings, error) {
	p := plugins{
		auth: auth.NewAuth(), broker: broker.NewBroker(), client: client.NewClient(),
		registry: registry.NewRegistry(), runtime: runtime.NewRuntime(),
		selector: selector.NewSelector(), server: server.NewServer(), store: store.NewMemoryStore(),
		transport: transport.NewHTTPTransport(),
	}
	c := cmd.NewCmd(cmd.Name(name), cmd.Auth(&p.auth), cmd.Broker(&p.broker), cmd.Client(&p.client),
		cmd.Config(&p.config), cmd.Profile(&p.profile), cmd.Registry(&p.registry), cmd.Runtime(&p.runtime),
		cmd.Selector(&p.selector), cmd.Server(&p.server), cmd.Store(&p.store), cmd.Tracer(&p.tracer),
		cmd.Transport(&p.transport))
	app := c.App()
	app.Name, app.Usage, app.Writer, app.ErrWriter = "portal "+name, platform.Descriptions[name], out, out
	app.Flags = append(append(app.Flags, cliFlags...), EdgeFlags...)
	app.ExitErrHandler = func(*cli.Context, error) {} // return errors, never exit
	var s ServiceSettings
	parsed, storeSet := false, false
	app.Action = func(ctx *cli.Context) error {
		s, parsed, storeSet = settingsFrom(name, ctx), true, ctx.String("store") != ""
		var err error
		s.Edge, err = EdgeFromCLI(ctx)
		return err
	}
	if err := app.Run(append([]string{"portal-" + name}, args...)); err != nil {
		return ServiceSettings{}, err
	}
	if !parsed {
		return ServiceSettings{}, ErrHelp
	}
	s.Registry, s.Broker = p.registry, p.broker
	if storeSet {
		s.Store = p.store
	}
	return s, s.check()
}

// settingsFrom reads the parsed flags.
func settingsFrom(name string, c *cli.Context) ServiceSettings {
	return ServiceSettings{
		Name:       name,
		BrokerName: c.String("broker"),
		RPC:        rpcOf(c.String("server")), Client: c.String("client"),
		Profile: c.String("profile"), ProfileAddress: c.String("profile_address"),
		Server: ServerSettings{
			Address: c.String("server_address"), Advertise: c.String("server_advertise"), ID: c.String("server_id"),
			Metadata:         metadataOf(c.StringSlice("server_metadata")),
			RegisterTTL:      secondsOr(c, "register_ttl", registerTTL),
			RegisterInterval: secondsOr(c, "register_interval", registerInterval),
		},
		Calls: CallSettings{
			Retries:        intIfSet(c, "client_retries"),
			RequestTimeout: durationOf(c.String("client_request_timeout")),
			PoolTTL:        durationOf(c.String("client_pool_ttl")),
			PoolSize:       c.Int("client_pool_size"),
		},
		Issuer: c.String("issuer"), HTTPAddress: c.String("http_address"), DataDir: c.String("data_dir"), ConfigFile: config.FileIn(c.String("config_file"), c.String("data_dir")),
		AdminPassword: os.Getenv("PORTAL_ADMIN_PASSWORD"),
		PublicKey:     c.String("auth_public_key"), PrivateKey: c.String("auth_private_key"),
		ConfigSource: c.String("config"), ConfigAddress: c.String("config_address"),
		Etcd:  etcdSettings(c.String("registry_address"), c.String),
		Cache: c.String("cache"), CacheAddress: c.String("cache_address"),
		RedisCAFile: c.String("redis_ca_file"),
		NATS: natsx.Settings{
			Addrs:  splitList(c.String("broker_address")),
			CAFile: c.String("nats_ca_file"), CredsFile: c.String("nats_creds_file"), NKeyFile: c.String("nats_nkey_file"),
		},
		TLSCertFile: c.String("tls_cert_file"), TLSKeyFile: c.String("tls_key_file"), TLSCAFile: c.String("tls_ca_file"),
		MetricsAddress: c.String("metrics_address"),
		TraceEndpoint:  c.String("trace_endpoint"),
		Events:         c.String("events"), EventsAddress: c.String("events_address"),
		NATSReconnectWait: c.Duration("nats_reconnect_wait"),
		serverFlag:        c.String("server"),
	}
}

// rpcOf is the protocol MICRO_SERVER names: mucp, else gRPC.
func rpcOf(server string) string {
	if server == "mucp" {
		return "mucp"
	}
	return "grpc"
}

// secondsOr is the integer flag name in seconds, def when it is not set.
func secondsOr(c *cli.Context, name string, def time.Duration) time.Duration {
	if !c.IsSet(name) {
		return def
	}
	return time.Duration(c.Int(name)) * time.Second
}

// intIfSet is the integer flag name, nil when it is not set.
func intIfSet(c *cli.Context, name string) *int {
	if !c.IsSet(name) {
		return nil
	}
	n := c.Int(name)
	return &n
}

// durationOf parses a duration go-micro's cmd has already checked.
func durationOf(v string) time.Duration {
	d, _ := time.ParseDuration(v)
	return d
}

// metadataOf parses --server_metadata key=value pairs as go-micro does.
func metadataOf(pairs []string) map[string]string {
	md := map[string]string{}
	for _, p := range pairs {
		k, v, _ := strings.Cut(p, "=")
		md[k] = v
	}
	return md
}

// check refuses settings no service can run with.
func (s ServiceSettings) check() error {
	if !validService(s.Name) {
		return errors.New("unknown service " + s.Name + " (want one of " + strings.Join(Services, ", ") + ")")
	}
	if err := checkRPC(s); err != nil {
		return err
	}
	return checkProfile(s)
}

// validService reports whether name is one of Services.
func validService(name string) bool {
	for _, n := range Services {
		if n == name {
			return true
		}
	}
	return false
}

// checkRPC refuses a server or client protocol other than the one the
// service is built with: gRPC (the default) or mucp, both ends the same.
func checkRPC(s ServiceSettings) error {
	if (s.serverFlag != "" && s.serverFlag != s.RPC) || (s.Client != "" && s.Client != s.RPC) {
		return errors.New("MICRO_SERVER and MICRO_CLIENT: Portal's services speak grpc (default) or mucp, the same on both")
	}
	if s.RPC == "mucp" && s.Client != "mucp" {
		return errors.New("MICRO_SERVER=mucp needs MICRO_CLIENT=mucp: every service speaks one protocol")
	}
	return nil
}

// checkProfile refuses a profile other than http, and pprof off loopback.
func checkProfile(s ServiceSettings) error {
	switch s.Profile {
	case "":
		return nil
	case "http":
		return checkProfileAddress(s.ProfileAddress)
	}
	return errors.New("--profile " + s.Profile + " (MICRO_DEBUG_PROFILE): Portal supports http only (pprof on --profile_address)")
}
