// Package supervisor is `portal up`: it runs web, user and system as separate
// processes (`portal web`, `portal user`, `portal system`) through go-micro's
// local runtime, restarts one that exits, and stops them all when its context
// ends. The children find each other through an etcd on loopback (embedded,
// or the one MICRO_REGISTRY_ADDRESS names) and send events through a NATS
// server with JetStream (embedded, or MICRO_BROKER_ADDRESS). The supervisor
// registers itself as the go-micro service "runtime" (proto/runtime), through
// which admins list the services, restart one and read its last log lines;
// Status, Restart and Logs are the client side of that API.
//
// What go-micro's local runtime (v4.11.0) does, and what this package adds:
//
//   - Create forks `<command> <args>` in a process group of its own, with the
//     parent's environment plus the given one, its stdout and stderr copied
//     to the given writer and appended to $TMPDIR/micro/logs/<name>.log (a
//     file shared by every runtime on the host, world-readable). The
//     supervisor points TMPDIR at the data dir and that file at /dev/null:
//     the lines go to its stderr, prefixed, and the last ones are kept in
//     memory (Runtime.Logs).
//   - Update sends SIGTERM to the process group, waits for the exit with no
//     time limit, and forks again. Delete does the same without the fork.
//     The supervisor sends SIGKILL when SIGTERM has not worked in stopGrace.
//     WithRetries(1) is needed for Update to fork at all: when the runtime's
//     two waiters on one process race (Update's own and the one Create
//     started), the loser records "wait: no child processes" as a failure,
//     and with the default of 0 retries the fork that follows is skipped.
//   - Restarts: only the loop that Start runs restarts anything, every 5 s,
//     with no backoff: a service that exited 0 always, one that failed never
//     (retries 0) or forever (any other value: the counter is reset at each
//     start). The supervisor does not Start that loop; it watches its
//     children itself and restarts one that exits, with exponential backoff,
//     giving up when it keeps exiting soon after each start.
//   - Read returns each service's name, version and a Metadata map (status,
//     error, started) that the runtime writes under a lock of its own, so
//     that reading it races; no pid anywhere. The supervisor reads pids from
//     /proc (so portal up needs Linux), exit statuses from the runtime's log
//     line "Service <name> terminated with error <status>", and counts a
//     child running when its node, with its pid, is in the registry.
//   - Logs tails that shared log file, finding the last n lines by seeking
//     200 bytes a line back; not used.
//   - The runtime sets no parent-death signal: a supervisor killed with
//     SIGKILL would leave its children running. They watch for that
//     themselves (WithSupervisor).
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	etcdreg "github.com/go-micro/plugins/v4/registry/etcd"
	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/logger"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/runtime"
	"go-micro.dev/v4/runtime/local"
	"go-micro.dev/v4/server"

	pauth "github.com/portal-go/portal/internal/auth"
	"github.com/portal-go/portal/internal/platform"
	runtimepb "github.com/portal-go/portal/proto/runtime"
	userpb "github.com/portal-go/portal/proto/user"
)

// ServiceName is the supervisor's service name in the registry.
const ServiceName = "runtime"

// services are the children in the order they start; they stop in reverse
// (the gateway first, so that the requests it finishes still reach the
// others).
var services = []string{"user", "system", "web"}

// pollEvery is how often the supervisor looks at its children.
const pollEvery = 250 * time.Millisecond

// Sentinel errors; the RPC handler maps them to go-micro errors (rpcError).
var (
	// ErrUnknownService: no supervised service has that name.
	ErrUnknownService = errors.New("supervisor: no such service")
	// ErrStopping: the supervisor is shutting down.
	ErrStopping = errors.New("supervisor: stopping")
	// ErrBadLines: a log request for fewer than 0 or more than the lines kept.
	ErrBadLines = fmt.Errorf("supervisor: lines must be 0 to %d", keepLines)
	// ErrDataDirInUse: another supervisor runs on the data dir.
	ErrDataDirInUse = errors.New("supervisor: another portal up uses this data dir")
)

// Options configure Run.
type Options struct {
	// DataDir holds the auth keys, the stores, and the embedded etcd's and
	// NATS's data.
	DataDir string
	// HTTPAddress is where web listens.
	HTTPAddress string
	// ConfigFile is the yaml config every child watches (when MICRO_CONFIG
	// is unset).
	ConfigFile string
	// EtcdAddress and NATSAddress are where the embedded servers listen,
	// loopback only; port 0 picks a free one.
	EtcdAddress, NATSAddress string
	// Executable is the portal binary to run as `<Executable> <service>`;
	// empty: this one.
	Executable string
	Log        *slog.Logger
	// Output receives the children's lines, each after "[<service>] ";
	// nil: os.Stderr.
	Output io.Writer
}

// supervisor is a running portal up.
type supervisor struct {
	o        Options
	log      *slog.Logger
	dataDir  string
	tmpdir   string // TMPDIR as it was, for the children
	etcdAddr string // the registry, host:port
	natsURL  string // the broker and event stream, nats://host:port
	// creds are the embedded servers' logins (zero for servers given by
	// address), which childEnv hands to the children.
	creds    Credentials
	private  string // MICRO_AUTH_PRIVATE_KEY, for user only
	reg      registry.Registry
	rt       runtime.Runtime
	svc      *platform.Service // "runtime"
	children []*child          // in start order
	byName   map[string]*child

	mu       sync.Mutex // guards stopping and ops.Add
	stopping bool
	ops      sync.WaitGroup // restarts under way

	closers []func() // undo what start did, run in reverse
}

// Run runs portal up until ctx ends, then stops the children (each gets
// SIGTERM and drains) and the servers it embeds, and returns nil. It
// changes this process's environment (TMPDIR, MICRO_AUTH_PRIVATE_KEY): it is
// meant to be the process's one job.
func Run(ctx context.Context, o Options) error {
	s := &supervisor{o: o, log: o.Log, byName: map[string]*child{}}
	if s.o.Output == nil {
		s.o.Output = os.Stderr
	}
	defer s.close()
	if err := s.start(); err != nil {
		s.shutdown()
		return err
	}
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.log.Info("stopping the services")
			s.shutdown()
			s.log.Info("all services stopped")
			return nil
		case <-t.C:
			for _, c := range s.children {
				s.check(c)
			}
		}
	}
}

// start takes the data dir, makes sure the keys exist, starts (or finds)
// etcd and NATS, registers the runtime service and starts the children.
func (s *supervisor) start() error {
	if err := checkEnv(os.Getenv); err != nil {
		return err
	}
	dir, err := filepath.Abs(s.o.DataDir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	s.dataDir = dir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	release, err := lockFile(filepath.Join(dir, "up.lock"))
	if err != nil {
		return err
	}
	s.closers = append(s.closers, release)
	publicKey, err := s.keys()
	if err != nil {
		return err
	}
	exe := s.o.Executable
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return fmt.Errorf("portal binary: %w", err)
		}
	}
	if err := s.startServers(); err != nil {
		return err
	}
	if err := s.startRuntime(); err != nil {
		return err
	}
	// The children exist (busy: about to start) before the runtime service
	// can be asked about them.
	for _, name := range services {
		c := &child{name: name, svc: &runtime.Service{Name: name}, out: newOutput(name, s.o.Output, keepLines),
			log: s.log.With("service", name), status: StatusStarting, busy: true}
		c.opts = []runtime.CreateOption{
			runtime.WithCommand(exe),
			runtime.WithArgs(name),
			runtime.WithEnv(s.childEnv(name)),
			runtime.WithOutput(c.out),
			runtime.WithRetries(1), // see the package doc
		}
		s.children = append(s.children, c)
		s.byName[name] = c
	}
	if err := s.startService(publicKey); err != nil {
		return err
	}
	for _, c := range s.children {
		c.op.Lock()
		s.launch(c, false)
		c.op.Unlock()
	}
	s.log.Info("supervisor ready", "etcd", s.etcdAddr, "nats", s.natsURL,
		"runtime", s.svc.Server().Options().Address, "data_dir", s.dataDir, "http", s.o.HTTPAddress)
	return nil
}

// keys makes sure the token keys and the gateway key exist before any child
// starts (web and system read the public key that user would otherwise
// create; the three share the gateway key), and returns the public one.
// Keys given in MICRO_AUTH_* or PORTAL_GATEWAY_KEY* stay with the children;
// the private one goes to user only.
func (s *supervisor) keys() (string, error) {
	if os.Getenv("PORTAL_GATEWAY_KEY") == "" && os.Getenv("PORTAL_GATEWAY_KEY_FILE") == "" {
		if _, created, err := pauth.LoadOrCreateGatewayKey(s.dataDir); err != nil {
			return "", err
		} else if created {
			s.log.Info("generated the gateway key", "dir", s.dataDir)
		}
	}
	pub, priv := os.Getenv("MICRO_AUTH_PUBLIC_KEY"), os.Getenv("MICRO_AUTH_PRIVATE_KEY")
	if pub != "" {
		s.private = priv
		// Every child inherits this process's environment: the private
		// key must not reach web and system.
		if err := os.Unsetenv("MICRO_AUTH_PRIVATE_KEY"); err != nil {
			return "", err
		}
		return pub, nil
	}
	keys, created, err := pauth.LoadOrCreateKeys(s.dataDir)
	if err != nil {
		return "", err
	}
	if created {
		s.log.Info("generated auth keys", "dir", s.dataDir)
	}
	return keys.Public, nil
}

// startServers embeds etcd and NATS, unless MICRO_REGISTRY_ADDRESS and
// MICRO_BROKER_ADDRESS name servers to use instead.
func (s *supervisor) startServers() error {
	if os.Getenv("MICRO_REGISTRY_ADDRESS") == "" || os.Getenv("MICRO_BROKER_ADDRESS") == "" {
		c, err := LoadOrCreateCredentials(s.dataDir)
		if err != nil {
			return err
		}
		s.creds = c
	}
	if addr := os.Getenv("MICRO_REGISTRY_ADDRESS"); addr != "" {
		s.etcdAddr = addr
		s.log.Info("registry: etcd at MICRO_REGISTRY_ADDRESS", "address", addr)
	} else {
		e, err := startEtcd(filepath.Join(s.dataDir, "etcd"), s.o.EtcdAddress, newOutput("etcd", s.o.Output, 0), s.creds)
		if err != nil {
			return err
		}
		s.closers = append(s.closers, e.Close)
		s.etcdAddr = e.Addr
		s.log.Info("registry: embedded etcd", "address", e.Addr, "dir", filepath.Join(s.dataDir, "etcd"))
	}
	if addr := os.Getenv("MICRO_BROKER_ADDRESS"); addr != "" {
		s.natsURL = addr
		s.log.Info("broker and events: NATS at MICRO_BROKER_ADDRESS", "address", addr)
		return nil
	}
	ns, err := startNATS(filepath.Join(s.dataDir, "nats"), s.o.NATSAddress, s.log.With("component", "nats"), s.creds)
	if err != nil {
		return err
	}
	s.closers = append(s.closers, func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	s.natsURL = ns.ClientURL()
	s.log.Info("broker and events: embedded NATS with JetStream", "address", s.natsURL, "dir", filepath.Join(s.dataDir, "nats"))
	return nil
}

// startService registers the supervisor as the go-micro service "runtime",
// serving proto/runtime to admins.
func (s *supervisor) startService(publicKey string) error {
	ml := platform.NewMicroLogger(s.log)
	regOpts := []registry.Option{registry.Addrs(strings.Split(s.etcdAddr, ",")...), registry.Logger(ml)}
	if s.embeddedEtcd() {
		regOpts = append(regOpts, etcdreg.Auth(s.creds.EtcdUser, s.creds.EtcdPassword))
	}
	s.reg = etcdreg.NewRegistry(regOpts...)
	verifier, err := pauth.NewJWT(pauth.Keys{Public: publicKey}.Options()...)
	if err != nil {
		return err
	}
	svc := platform.NewService(ServiceName, platform.Plugins{
		Registry: s.reg,
		Broker:   broker.NewMemoryBroker(broker.Logger(ml)), // it publishes nothing
		Address:  "127.0.0.1:0",
	}, s.log)
	if err := svc.Server().Init(
		// Portal's registration TTL and interval (RunService's): a dead
		// supervisor leaves the registry within 10 s.
		server.RegisterTTL(10*time.Second),
		server.RegisterInterval(5*time.Second),
	); err != nil {
		return err
	}
	svc.SetAuth(pauth.HandlerWrapper(verifier, Endpoints, pauth.UserChecker(userpb.NewUserService("user", svc.Client()))))
	if err := runtimepb.RegisterRuntimeHandler(svc.Server(), &handler{s: s}); err != nil {
		return err
	}
	if err := svc.Start(); err != nil {
		return err
	}
	s.svc = svc
	return nil
}

// startRuntime makes go-micro's local runtime, its log files (see the
// package doc) under the data dir and going nowhere.
func (s *supervisor) startRuntime() error {
	dir := filepath.Join(s.dataDir, "runtime")
	logs := filepath.Join(dir, "micro", "logs")
	if err := os.MkdirAll(logs, 0o700); err != nil {
		return err
	}
	for _, name := range services {
		p := filepath.Join(logs, name+".log")
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if err := os.Symlink(os.DevNull, p); err != nil {
			return err
		}
	}
	tmpdir, set := os.LookupEnv("TMPDIR")
	s.tmpdir = tmpdir
	if err := os.Setenv("TMPDIR", dir); err != nil {
		return err
	}
	s.closers = append(s.closers, func() {
		if set {
			os.Setenv("TMPDIR", tmpdir)
		} else {
			os.Unsetenv("TMPDIR")
		}
	})
	s.rt = local.NewRuntime(runtime.WithLogger(&runtimeLogger{log: s.log.With("component", "go-micro runtime"), exited: s.noteExit}))
	return nil
}

// noteExit passes an exit status the runtime logged to its child.
func (s *supervisor) noteExit(name, status string) {
	if c, ok := s.byName[name]; ok {
		c.noteExit(status)
	}
}

// childEnv is what a child gets on top of the supervisor's own environment
// (the runtime passes that on): where the registry and NATS are, the data
// dir, loopback RPC, and its own settings.
func (s *supervisor) childEnv(name string) []string {
	nats := s.natsURL
	if s.embeddedNATS() {
		nats = "nats://" + url.UserPassword(s.creds.NATSUser, s.creds.NATSPassword).String() + "@" + strings.TrimPrefix(nats, "nats://")
	}
	env := []string{
		"MICRO_REGISTRY=etcd", "MICRO_REGISTRY_ADDRESS=" + s.etcdAddr,
		"MICRO_BROKER=nats", "MICRO_BROKER_ADDRESS=" + nats,
		"PORTAL_EVENTS=nats", "PORTAL_EVENTS_ADDRESS=" + nats,
		"PORTAL_DATA_DIR=" + s.dataDir,
		"PORTAL_CONFIG_FILE=" + s.configFile(),
		envSupervisorPID + "=" + strconv.Itoa(os.Getpid()),
		"TMPDIR=" + s.tmpdir,
	}
	if os.Getenv("MICRO_SERVER_ADDRESS") == "" {
		env = append(env, "MICRO_SERVER_ADDRESS=127.0.0.1:0")
	}
	if s.embeddedEtcd() {
		env = append(env, "ETCD_USERNAME="+s.creds.EtcdUser, "ETCD_PASSWORD="+s.creds.EtcdPassword)
	}
	switch name {
	case "web":
		env = append(env, "PORTAL_HTTP_ADDRESS="+s.o.HTTPAddress)
	case "user":
		if s.private != "" {
			env = append(env, "MICRO_AUTH_PRIVATE_KEY="+s.private)
		}
	}
	return env
}

// configFile is the config file as an absolute path.
func (s *supervisor) configFile() string {
	if p, err := filepath.Abs(s.o.ConfigFile); err == nil {
		return p
	}
	return s.o.ConfigFile
}

// checkEnv refuses settings the children cannot share or that break portal
// up: another registry or broker than etcd and NATS, one listener for three
// processes, half a key pair.
func checkEnv(getenv func(string) string) error {
	if v := getenv("MICRO_REGISTRY"); v != "" && v != "etcd" {
		return fmt.Errorf("MICRO_REGISTRY=%s: portal up's services find each other through etcd (embedded, or at MICRO_REGISTRY_ADDRESS)", v)
	}
	if v := getenv("MICRO_BROKER"); v != "" && v != "nats" {
		return fmt.Errorf("MICRO_BROKER=%s: portal up's services send events through NATS (embedded, or at MICRO_BROKER_ADDRESS)", v)
	}
	if v := getenv("MICRO_SERVER_ADDRESS"); v != "" {
		if _, port, err := net.SplitHostPort(v); err != nil || port != "0" {
			return fmt.Errorf("MICRO_SERVER_ADDRESS=%s: the three services would listen on it; give a host with port 0", v)
		}
	}
	for _, k := range []string{"PORTAL_METRICS_ADDRESS", "MICRO_DEBUG_PROFILE"} {
		if getenv(k) != "" {
			return fmt.Errorf("%s: under portal up the three services would each listen on the same address; unset it", k)
		}
	}
	if pub, priv := getenv("MICRO_AUTH_PUBLIC_KEY"), getenv("MICRO_AUTH_PRIVATE_KEY"); (pub == "") != (priv == "") {
		return errors.New("MICRO_AUTH_PUBLIC_KEY and MICRO_AUTH_PRIVATE_KEY: give both (user signs tokens), or neither (keys in the data dir)")
	}
	return nil
}

// shutdown stops the runtime service, then the children in reverse start
// order, waiting for any restart under way.
func (s *supervisor) shutdown() {
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	if s.svc != nil {
		if err := s.svc.Stop(); err != nil {
			s.log.Warn("runtime service", "err", err)
		}
	}
	for i := len(s.children) - 1; i >= 0; i-- {
		s.stopChild(s.children[i])
	}
	s.ops.Wait()
}

// close undoes start: NATS, etcd, the data dir's lock, TMPDIR.
func (s *supervisor) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
}

// List reports every supervised service, sorted by name.
func (s *supervisor) List() []*runtimepb.Process {
	out := make([]*runtimepb.Process, 0, len(s.children))
	for _, c := range s.children {
		c.mu.Lock()
		out = append(out, c.process())
		c.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Restart restarts the service name in the background (SIGTERM, wait, fork)
// and returns its state as the restart begins. A restart already under way
// is not started twice.
func (s *supervisor) Restart(name string) (*runtimepb.Process, error) {
	c, ok := s.byName[name]
	if !ok {
		return nil, ErrUnknownService
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.busy && !s.goRestart(c, true) {
		return nil, ErrStopping
	}
	return c.process(), nil
}

// defaultLogLines is how many lines Logs returns when asked for 0.
const defaultLogLines = 100

// Logs returns the last n lines service name wrote (0: 100).
func (s *supervisor) Logs(name string, n int) ([]string, error) {
	c, ok := s.byName[name]
	if !ok {
		return nil, ErrUnknownService
	}
	if n < 0 || n > keepLines {
		return nil, ErrBadLines
	}
	if n == 0 {
		n = defaultLogLines
	}
	return c.out.Last(n), nil
}

// runtimeLogger is the logger go-micro's runtime gets. Its lines go to debug
// level (the supervisor logs each start, exit and restart once itself, and
// some of the runtime's lines mislead: "terminated with error wait: no child
// processes" after a restart), its fatal ones to error level. From "Service
// <name> terminated with error <status>" it takes the exit status.
type runtimeLogger struct {
	log    *slog.Logger
	opts   logger.Options
	exited func(name, status string)
}

// echild is the runtime's waiter that lost the race for an exit status.
const echild = "wait: no child processes"

func (l *runtimeLogger) Init(opts ...logger.Option) error {
	for _, o := range opts {
		o(&l.opts)
	}
	return nil
}

func (l *runtimeLogger) Options() logger.Options { return l.opts }

func (l *runtimeLogger) Fields(map[string]interface{}) logger.Logger { return l }

func (l *runtimeLogger) String() string { return "supervisor" }

func (l *runtimeLogger) Log(level logger.Level, v ...interface{}) {
	l.line(level, fmt.Sprint(v...))
}

func (l *runtimeLogger) Logf(level logger.Level, format string, v ...interface{}) {
	l.line(level, fmt.Sprintf(format, v...))
}

func (l *runtimeLogger) line(level logger.Level, msg string) {
	if name, status, ok := parseExit(msg); ok && status != echild {
		l.exited(name, status)
	}
	if level >= logger.FatalLevel {
		l.log.Error(msg)
		return
	}
	l.log.Debug(msg)
}

// parseExit reads the runtime's line about a process that exited with an
// error.
func parseExit(msg string) (name, status string, ok bool) {
	rest, ok := strings.CutPrefix(msg, "Service ")
	if !ok {
		return "", "", false
	}
	return strings.Cut(rest, " terminated with error ")
}

// embeddedEtcd and embeddedNATS report whether the supervisor runs etcd or
// NATS itself and holds their logins.
func (s *supervisor) embeddedEtcd() bool {
	return s.creds.EtcdPassword != "" && os.Getenv("MICRO_REGISTRY_ADDRESS") == ""
}

func (s *supervisor) embeddedNATS() bool {
	return s.creds.NATSPassword != "" && os.Getenv("MICRO_BROKER_ADDRESS") == ""
}
