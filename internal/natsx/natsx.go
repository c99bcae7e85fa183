// Package natsx is how Portal reaches NATS, its broker and audit stream:
// one set of settings (addresses that may carry a user and password or a
// token, TLS with a CA, a creds or NKey seed file) that the broker and the
// stream share, and a check at start that names the setting that is wrong.
package natsx

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"go-micro.dev/v4/broker"

	"github.com/portal-go/portal/internal/tlsx"
)

// Settings say how to reach NATS.
type Settings struct {
	// Addrs are host:port, nats://[user:password@|token@]host:port or
	// tls://... (TLS).
	Addrs []string
	// CAFile (PORTAL_NATS_CA_FILE) is the PEM CA of the server's
	// certificate: it turns TLS on. TLS without it trusts the system's.
	CAFile string
	// CredsFile (PORTAL_NATS_CREDS_FILE) is a user JWT and NKey seed (a
	// .creds file); NKeyFile (PORTAL_NATS_NKEY_FILE) an NKey seed alone.
	CredsFile, NKeyFile string
}

// Servers are the addresses as nats:// URLs, their credentials kept, and
// whether any asked for TLS (tls://). go-micro's NATS broker would make
// tls://host into nats://tls://host.
func (s Settings) Servers() (urls []string, secure bool) {
	for _, a := range s.Addrs {
		a = strings.TrimSpace(a)
		switch {
		case a == "":
			continue
		case strings.HasPrefix(a, "tls://"):
			a, secure = "nats://"+strings.TrimPrefix(a, "tls://"), true
		case !strings.Contains(a, "://"):
			a = "nats://" + a
		}
		urls = append(urls, a)
	}
	if len(urls) == 0 {
		urls = []string{nats.DefaultURL}
	}
	return urls, secure
}

// TLS is the client's TLS config: nil unless a tls:// address or the CA
// asks for TLS. Verification is never skipped.
func (s Settings) TLS() (*tls.Config, error) {
	_, secure := s.Servers()
	if !secure && s.CAFile == "" {
		return nil, nil
	}
	return tlsx.Client(s.CAFile, "PORTAL_NATS_CA_FILE")
}

// Auth are the nats.go options of the creds or NKey file (none: the
// addresses' own credentials, if any).
func (s Settings) Auth() ([]nats.Option, error) {
	switch {
	case s.CredsFile != "" && s.NKeyFile != "":
		return nil, errors.New("PORTAL_NATS_CREDS_FILE and PORTAL_NATS_NKEY_FILE: give one")
	case s.CredsFile != "":
		if _, err := os.Stat(s.CredsFile); err != nil {
			return nil, fmt.Errorf("PORTAL_NATS_CREDS_FILE: %w", err)
		}
		return []nats.Option{nats.UserCredentials(s.CredsFile)}, nil
	case s.NKeyFile != "":
		o, err := nats.NkeyOptionFromSeed(s.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("PORTAL_NATS_NKEY_FILE: %w", err)
		}
		return []nats.Option{o}, nil
	}
	return nil, nil
}

// Connect are every nats.go option s implies, for a connection of its own
// (the audit stream): TLS and the creds or NKey.
func (s Settings) Connect() ([]nats.Option, error) {
	opts, err := s.Auth()
	if err != nil {
		return nil, err
	}
	t, err := s.TLS()
	if err != nil {
		return nil, err
	}
	if t != nil {
		opts = append(opts, nats.Secure(t))
	}
	return opts, nil
}

// Broker are the go-micro broker options of s: the addresses as nats://
// URLs and TLS, which go-micro's NATS broker sets on its connection itself
// (it overrides the nats.Options' own). The creds or NKey go in the
// nats.Options (Auth).
func (s Settings) Broker() ([]broker.Option, error) {
	urls, _ := s.Servers()
	t, err := s.TLS()
	if err != nil {
		return nil, err
	}
	opts := []broker.Option{broker.Addrs(urls...)}
	if t != nil {
		opts = append(opts, broker.Secure(true), broker.TLSConfig(t))
	}
	return opts, nil
}

// Redact is the address list addrs with whatever stands between a
// scheme's "://" and an "@" (user, password, token) replaced by
// "redacted": for logs. It does not parse, so that no malformed address
// (go-micro's broker makes tls://u:p@h into nats://tls://u:p@h) slips by.
func Redact(addrs string) string {
	parts := strings.Split(addrs, ",")
	for i, a := range parts {
		at := strings.LastIndex(a, "@")
		if at < 0 {
			continue
		}
		start := strings.LastIndex(a[:at], "://")
		if start < 0 {
			start = -3
		}
		parts[i] = a[:start+3] + "redacted" + a[at:]
	}
	return strings.Join(parts, ",")
}

// Describe says how s reaches NATS, for the log: never a secret.
func (s Settings) Describe() string {
	urls, secure := s.Servers()
	d := Redact(strings.Join(urls, ","))
	if secure || s.CAFile != "" {
		d += " tls"
	} else {
		d += " plaintext"
	}
	switch {
	case s.CredsFile != "":
		d += " creds=" + s.CredsFile
	case s.NKeyFile != "":
		d += " nkey=" + s.NKeyFile
	}
	return d
}

// ErrUnreachable is Check's answer when no server answered: nothing says the
// settings are wrong.
var ErrUnreachable = errors.New("nats: unreachable")

// CheckTimeout bounds Check's connection.
const CheckTimeout = 5 * time.Second

// Check connects to NATS once as s says and returns an error naming the
// setting at fault when the server's certificate is not signed by the CA,
// TLS is wanted on one side only, or the credentials are refused or
// missing; one wrapping ErrUnreachable when no server answers.
func Check(s Settings) error {
	opts, err := s.Connect()
	if err != nil {
		return err
	}
	urls, _ := s.Servers()
	opts = append(opts, nats.Timeout(CheckTimeout), nats.NoReconnect(), nats.Name("portal-check"))
	nc, err := nats.Connect(strings.Join(urls, ","), opts...)
	if err == nil {
		nc.Close()
		return nil
	}
	var (
		unknown x509.UnknownAuthorityError
		verify  *tls.CertificateVerificationError
		host    x509.HostnameError
	)
	where := s.Describe()
	plain, _ := s.TLS()
	switch {
	case errors.Is(err, nats.ErrSecureConnRequired), plain == nil && errors.As(err, &unknown):
		// A server that requires TLS makes nats.go upgrade, with the
		// system's CAs.
		return fmt.Errorf("nats at %s requires TLS: give a tls:// address and PORTAL_NATS_CA_FILE: %w", where, err)
	case errors.As(err, &unknown), errors.As(err, &verify) && errors.As(verify.Err, &unknown):
		return fmt.Errorf("nats at %s: its certificate is not signed by the CA of PORTAL_NATS_CA_FILE (or, without it, by a system CA): %w", where, err)
	case errors.As(err, &host):
		return fmt.Errorf("nats at %s: its certificate does not name the address dialed: %w", where, err)
	case errors.Is(err, nats.ErrAuthorization), strings.Contains(strings.ToLower(err.Error()), "authorization violation"):
		return fmt.Errorf("nats at %s refused the credentials (user:password or token in the address, PORTAL_NATS_CREDS_FILE, PORTAL_NATS_NKEY_FILE): %w", where, err)
	case errors.Is(err, nats.ErrSecureConnWanted):
		return fmt.Errorf("nats at %s does not speak TLS, but tls:// or PORTAL_NATS_CA_FILE asks for it: %w", where, err)
	case errors.Is(err, nats.ErrNoServers), errors.Is(err, nats.ErrTimeout):
		return fmt.Errorf("%w: %s: %v", ErrUnreachable, where, err)
	}
	return fmt.Errorf("nats at %s: %w", where, err)
}
