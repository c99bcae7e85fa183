// Package etcdx is how Portal reaches etcd, its registry and config center:
// one set of settings (addresses, TLS with a CA and an optional client
// certificate, the ETCD_USERNAME / ETCD_PASSWORD of go-micro's etcd plugin)
// that both use, and a check at start that names the setting that is wrong.
package etcdx

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	etcdreg "github.com/go-micro/plugins/v4/registry/etcd"
	"go-micro.dev/v4/registry"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/portal-go/portal/internal/tlsx"
)

// DialTimeout bounds connecting (and authenticating) to etcd.
const DialTimeout = 5 * time.Second

// Settings say how to reach etcd.
type Settings struct {
	// Addrs are host:port, http://host:port or https://host:port; an
	// https:// address means TLS.
	Addrs []string
	// CAFile (PORTAL_ETCD_CA_FILE) is the PEM CA that signs etcd's
	// certificate: it turns TLS on. Without it, TLS (an https:// address)
	// trusts the system's CAs.
	CAFile string
	// CertFile and KeyFile (PORTAL_ETCD_CERT_FILE, PORTAL_ETCD_KEY_FILE)
	// are the client certificate etcd may require: both or neither.
	CertFile, KeyFile string
	// Username and Password are ETCD_USERNAME and ETCD_PASSWORD: both or
	// neither.
	Username, Password string
}

// FromEnv are the settings of addrs with the credentials from ETCD_USERNAME
// and ETCD_PASSWORD, the names go-micro's etcd plugin reads.
func FromEnv(addrs []string, caFile, certFile, keyFile string) Settings {
	return Settings{
		Addrs: addrs, CAFile: caFile, CertFile: certFile, KeyFile: keyFile,
		Username: os.Getenv("ETCD_USERNAME"), Password: os.Getenv("ETCD_PASSWORD"),
	}
}

// Endpoints are the addresses as host:port (default port 2379; none:
// 127.0.0.1:2379), and whether any of them asked for TLS (https://).
func (s Settings) Endpoints() (eps []string, secure bool) {
	for _, a := range s.Addrs {
		a = strings.TrimSpace(a)
		switch {
		case strings.HasPrefix(a, "https://"):
			a, secure = strings.TrimPrefix(a, "https://"), true
		case strings.HasPrefix(a, "http://"):
			a = strings.TrimPrefix(a, "http://")
		}
		a = strings.TrimSuffix(a, "/")
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			a = net.JoinHostPort(a, "2379")
		}
		eps = append(eps, a)
	}
	if len(eps) == 0 {
		eps = []string{"127.0.0.1:2379"}
	}
	return eps, secure
}

// TLS is the client's TLS config: nil when neither an https:// address nor
// a CA or client certificate asks for TLS. It never skips verification
// (go-micro's etcd plugin does, given Secure without a config).
func (s Settings) TLS() (*tls.Config, error) {
	_, secure := s.Endpoints()
	if !secure && s.CAFile == "" && s.CertFile == "" && s.KeyFile == "" {
		return nil, nil
	}
	c, err := tlsx.Client(s.CAFile, "PORTAL_ETCD_CA_FILE")
	if err != nil {
		return nil, err
	}
	if (s.CertFile == "") != (s.KeyFile == "") {
		return nil, errors.New("PORTAL_ETCD_CERT_FILE and PORTAL_ETCD_KEY_FILE: give both or neither")
	}
	if s.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("PORTAL_ETCD_CERT_FILE, PORTAL_ETCD_KEY_FILE: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// check refuses half-given credentials.
func (s Settings) check() error {
	if (s.Username == "") != (s.Password == "") {
		return errors.New("ETCD_USERNAME and ETCD_PASSWORD: give both or neither")
	}
	return nil
}

// Config is the etcd client config of s.
func (s Settings) Config() (clientv3.Config, error) {
	if err := s.check(); err != nil {
		return clientv3.Config{}, err
	}
	t, err := s.TLS()
	if err != nil {
		return clientv3.Config{}, err
	}
	eps, _ := s.Endpoints()
	return clientv3.Config{
		Endpoints: eps, TLS: t, Username: s.Username, Password: s.Password,
		DialTimeout: DialTimeout, Logger: zap.NewNop(),
	}, nil
}

// Describe says how s reaches etcd, for the log: never the password.
func (s Settings) Describe() string {
	eps, secure := s.Endpoints()
	d := strings.Join(eps, ",")
	switch {
	case s.CertFile != "":
		d += " tls+client-cert"
	case secure || s.CAFile != "":
		d += " tls"
	default:
		d += " plaintext"
	}
	if s.Username != "" {
		d += " user=" + s.Username
	}
	return d
}

// Registry is go-micro's etcd registry on s. With credentials the plugin
// authenticates as it is made, so an etcd that cannot be reached is an
// error here.
func (s Settings) Registry() (registry.Registry, error) {
	cfg, err := s.Config()
	if err != nil {
		return nil, err
	}
	opts := []registry.Option{registry.Addrs(cfg.Endpoints...), registry.Timeout(DialTimeout)}
	if cfg.TLS != nil {
		opts = append(opts, registry.TLSConfig(cfg.TLS))
	}
	if s.Username != "" {
		opts = append(opts, etcdreg.Auth(s.Username, s.Password))
	}
	quiet := zap.NewProductionConfig()
	quiet.Level = zap.NewAtomicLevelAt(zap.ErrorLevel)
	opts = append(opts, etcdreg.LogConfig(&quiet))
	r := etcdreg.NewRegistry(opts...)
	// NewRegistry drops the error of the client it makes, and puts
	// MICRO_REGISTRY_ADDRESS, as given (an https:// address it cannot
	// parse), after opts; Init makes the client again on the endpoints and
	// returns the error.
	if err := r.Init(registry.Addrs(cfg.Endpoints...)); err != nil {
		return nil, fmt.Errorf("etcd registry at %s: %w", s.Describe(), err)
	}
	return r, nil
}

// ErrUnreachable is Check's answer when no etcd answered: nothing says the
// settings are wrong.
var ErrUnreachable = errors.New("etcd: unreachable")

// Check connects to etcd as s says and reads the registry's prefix. It
// returns an error naming the setting at fault when etcd's certificate is
// not signed by the CA, the TLS handshake fails, the credentials are
// refused or missing, or the user may not read the registry; one wrapping
// ErrUnreachable when no endpoint answers.
func Check(ctx context.Context, s Settings) error {
	cfg, err := s.Config()
	if err != nil {
		return err
	}
	if cfg.TLS != nil {
		if err := checkTLS(ctx, cfg); err != nil {
			return err
		}
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return credentialsError(s, err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, DialTimeout)
	defer cancel()
	if _, err := cli.Get(ctx, "/micro/", clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil {
		return credentialsError(s, err)
	}
	return nil
}

// checkTLS shakes hands with the first endpoint that accepts a connection.
// Without a client certificate it offers TLS 1.2 at most: in 1.2 a server
// that wants one says so during the handshake, in 1.3 only after it.
func checkTLS(ctx context.Context, cfg clientv3.Config) error {
	var last error
	for _, ep := range cfg.Endpoints {
		c := forHost(cfg.TLS, ep)
		if len(c.Certificates) == 0 {
			c.MaxVersion = tls.VersionTLS12
		}
		d := tls.Dialer{NetDialer: &net.Dialer{Timeout: DialTimeout}, Config: c}
		conn, err := d.DialContext(ctx, "tcp", ep)
		if err == nil {
			conn.Close()
			return nil
		}
		if msg := err.Error(); strings.Contains(msg, "certificate required") || strings.Contains(msg, "bad certificate") {
			return fmt.Errorf("etcd at %s wants a client certificate signed by its CA: set PORTAL_ETCD_CERT_FILE and PORTAL_ETCD_KEY_FILE: %w", ep, err)
		}
		var (
			unknown  x509.UnknownAuthorityError
			hostname x509.HostnameError
			invalid  x509.CertificateInvalidError
			verify   *tls.CertificateVerificationError
			opErr    *net.OpError
		)
		switch {
		case errors.As(err, &unknown), errors.As(err, &verify) && errors.As(verify.Err, &unknown):
			return fmt.Errorf("etcd at %s: its certificate is not signed by the CA of PORTAL_ETCD_CA_FILE (or, without it, by a system CA): %w", ep, err)
		case errors.As(err, &hostname):
			return fmt.Errorf("etcd at %s: its certificate does not name the address dialed (give the address its certificate names): %w", ep, err)
		case errors.As(err, &invalid):
			return fmt.Errorf("etcd at %s: its certificate is not valid: %w", ep, err)
		case errors.As(err, &opErr) && opErr.Op == "dial":
			last = fmt.Errorf("%w: %s: %v", ErrUnreachable, ep, err)
			continue
		}
		return fmt.Errorf("etcd at %s: TLS handshake failed (a plaintext etcd, or one that wants a client certificate: PORTAL_ETCD_CERT_FILE, PORTAL_ETCD_KEY_FILE): %w", ep, err)
	}
	return last
}

// forHost is c for dialing ep: its host as the name to verify.
func forHost(c *tls.Config, ep string) *tls.Config {
	c = c.Clone()
	if host, _, err := net.SplitHostPort(ep); err == nil {
		c.ServerName = host
	}
	return c
}

// credentialsError says which setting etcd's answer err points at.
func credentialsError(s Settings, err error) error {
	switch {
	case errors.Is(err, rpctypes.ErrAuthFailed):
		return fmt.Errorf("etcd refused ETCD_USERNAME %q with ETCD_PASSWORD (wrong user name or password): %w", s.Username, err)
	case errors.Is(err, rpctypes.ErrUserEmpty), errors.Is(err, rpctypes.ErrInvalidAuthToken):
		return fmt.Errorf("etcd has authentication on: set ETCD_USERNAME and ETCD_PASSWORD: %w", err)
	case errors.Is(err, rpctypes.ErrPermissionDenied) && s.Username == "":
		return fmt.Errorf("etcd has authentication on (it took this client for the common name of its certificate, which may not read /micro/): set ETCD_USERNAME and ETCD_PASSWORD: %w", err)
	case errors.Is(err, rpctypes.ErrPermissionDenied):
		return fmt.Errorf("etcd user %q may not read /micro/: grant its role readwrite on the prefix /micro/ (README): %w", s.Username, err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, rpctypes.ErrGRPCNoLeader):
		return fmt.Errorf("%w: %s: %v", ErrUnreachable, s.Describe(), err)
	}
	return fmt.Errorf("etcd at %s: %w", s.Describe(), err)
}
