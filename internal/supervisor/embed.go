//go:build up

package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// natsServer is the embedded NATS server.
type natsServer = natsserver.Server

// startTimeout bounds how long the embedded etcd and NATS may take to serve.
const startTimeout = 30 * time.Second

// checkLoopback refuses an address whose host is not a loopback IP: the
// embedded etcd and NATS speak plain text (their logins keep other local
// processes out, not a network's eavesdroppers).
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address (127.0.0.1): the embedded servers speak plain text", addr)
	}
	return nil
}

// etcdServer is an embedded single-member etcd.
type etcdServer struct {
	e     *embed.Etcd
	level zap.AtomicLevel
	// Addr is where it serves clients, host:port.
	Addr string
}

// startEtcd runs etcd with its data in dir, serving clients on addr (port 0:
// a free one), its error lines to w, and returns once it serves, with
// authentication on (c's users).
func startEtcd(dir, addr string, w io.Writer, c Credentials) (*etcdServer, error) {
	if err := checkLoopback(addr); err != nil {
		return nil, fmt.Errorf("etcd address: %w", err)
	}
	cfg := embed.NewConfig()
	cfg.Name = "portal"
	cfg.Dir = dir
	client := url.URL{Scheme: "http", Host: addr}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	// One member: no peer listener at all. The peer URL only names the
	// member in its cluster; nothing dials it.
	cfg.ListenPeerUrls = nil
	cfg.AdvertisePeerUrls = []url.URL{{Scheme: "http", Host: "127.0.0.1:0"}}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	// Nothing listens beyond the client port: no metrics listener, no HTTP
	// gateway on it.
	cfg.ListenMetricsUrls = nil
	cfg.EnableGRPCGateway = false
	// A lone member elects itself after one election timeout on every
	// start: 100 ms rather than 1 s. With no peers the short heartbeat
	// costs nothing.
	cfg.TickMs, cfg.ElectionMs = 10, 100
	// Registrations are rewritten every few seconds: keep one hour of
	// history, not all of it.
	cfg.AutoCompactionMode, cfg.AutoCompactionRetention = embed.CompactorModePeriodic, "1h"
	// The passwords are 192 random bits (Credentials): bcrypt's work factor
	// adds nothing against guessing them, and at etcd's default each login
	// (every child logs in a few times at start) costs ~50 ms of CPU.
	cfg.BcryptCost = 4 // bcrypt.MinCost
	level := zap.NewAtomicLevelAt(zap.ErrorLevel)
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(w), level)
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.New(quietCore{core}))

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	s := &etcdServer{e: e, level: level, Addr: e.Clients[0].Addr().String()}
	select {
	case <-e.Server.ReadyNotify():
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		if err := enableEtcdAuth(ctx, e, c); err != nil {
			s.Close()
			return nil, err
		}
		return s, nil
	case err := <-e.Err():
		s.Close()
		return nil, fmt.Errorf("etcd: %w", err)
	case <-time.After(startTimeout):
		s.Close()
		return nil, fmt.Errorf("etcd: not ready after %v", startTimeout)
	}
}

// Close stops etcd. Its listeners report errors as they close: those are
// not logged.
func (s *etcdServer) Close() {
	s.level.SetLevel(zap.FatalLevel)
	s.e.Close()
}

// quietCore drops the error "failed to update storage version", which a
// fresh member logs while it bootstraps (etcd-io/etcd#18978) and then
// retries by itself: on a first start it would be the only error line.
type quietCore struct{ zapcore.Core }

// bootstrapNoise is the message quietCore drops.
const bootstrapNoise = "failed to update storage version"

func (c quietCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if e.Message == bootstrapNoise {
		return ce
	}
	return c.Core.Check(e, ce)
}

func (c quietCore) With(f []zapcore.Field) zapcore.Core { return quietCore{c.Core.With(f)} }

// startNATS runs a NATS server with JetStream, its storage in dir, serving
// clients on addr (port 0: a free one) that log in as c's user, and returns
// once it accepts connections.
func startNATS(dir, addr string, log *slog.Logger, c Credentials) (*natsServer, error) {
	if err := checkLoopback(addr); err != nil {
		return nil, fmt.Errorf("nats address: %w", err)
	}
	host, p, _ := net.SplitHostPort(addr)
	port, err := strconv.Atoi(p)
	if err != nil {
		return nil, fmt.Errorf("nats address %q: %w", addr, err)
	}
	if port == 0 {
		port = natsserver.RANDOM_PORT // 0 would mean NATS's 4222
	}
	ns, err := natsserver.NewServer(&natsserver.Options{
		ServerName: "portal",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		Users:      []*natsserver.User{{Username: c.NATSUser, Password: c.NATSPassword}},
		// The supervisor handles signals; the HTTP monitor stays off.
		NoSigs: true,
	})
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	ns.SetLoggerV2(natsLogger{log}, false, false, false)
	go ns.Start()
	if !ns.ReadyForConnections(startTimeout) {
		ns.Shutdown()
		return nil, errors.New("nats: not ready after " + startTimeout.String())
	}
	return ns, nil
}

// natsLogger points the NATS server's log at slog: its notices (a banner of
// a dozen lines at start) at debug level, warnings and errors at theirs.
type natsLogger struct{ log *slog.Logger }

func (l natsLogger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l natsLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l natsLogger) Fatalf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l natsLogger) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l natsLogger) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l natsLogger) Tracef(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }

// enableEtcdAuth turns authentication on in the embedded etcd e, once: a
// root user, and c's user whose role may read and write /micro/ only. An
// etcd whose authentication is on already (a later start) is left alone.
func enableEtcdAuth(ctx context.Context, e *embed.Etcd, c Credentials) error {
	cli := v3client.New(e.Server)
	defer cli.Close()
	st, err := cli.AuthStatus(ctx)
	if err != nil {
		return fmt.Errorf("etcd auth status: %w", err)
	}
	if st.Enabled {
		return nil
	}
	// Each step tolerates having been done by a start that stopped half
	// way.
	steps := []func() error{
		func() error { _, err := cli.UserAdd(ctx, "root", c.EtcdRootPassword); return err },
		func() error { _, err := cli.RoleAdd(ctx, "root"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.RoleAdd(ctx, "portal"); return err },
		func() error {
			_, err := cli.RoleGrantPermission(ctx, "portal", "/micro/", clientv3.GetPrefixRangeEnd("/micro/"), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := cli.UserAdd(ctx, c.EtcdUser, c.EtcdPassword); return err },
		func() error { _, err := cli.UserGrantRole(ctx, c.EtcdUser, "portal"); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	}
	for _, step := range steps {
		if err := step(); err != nil && !errors.Is(err, rpctypes.ErrUserAlreadyExist) && !errors.Is(err, rpctypes.ErrRoleAlreadyExist) {
			return fmt.Errorf("etcd auth setup: %w", err)
		}
	}
	return nil
}
