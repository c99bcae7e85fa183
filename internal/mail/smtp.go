package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"net/textproto"
	"strings"
	"time"
)

// SMTPConfig says where and how to send mail.
type SMTPConfig struct {
	// Address is the server's host:port.
	Address string
	// From is the sender's address.
	From string
	// Username and Password, when set, authenticate (PLAIN), and only
	// over TLS.
	Username, Password string
	// ImplicitTLS connects with TLS from the first byte (port 465); else
	// the connection starts plain and is upgraded with STARTTLS when the
	// server offers it.
	ImplicitTLS bool
	// TLS is the client's TLS configuration (nil: the system's roots, the
	// server name from Address).
	TLS *tls.Config
	// Timeout bounds one message's whole exchange (default 30 s).
	Timeout time.Duration
}

// Environment variables that configure SMTP.
const (
	EnvAddress  = "PORTAL_SMTP_ADDRESS"
	EnvFrom     = "PORTAL_SMTP_FROM"
	EnvUsername = "PORTAL_SMTP_USERNAME"
	EnvPassword = "PORTAL_SMTP_PASSWORD"
	// EnvTLS is "starttls" (the default: upgrade when offered) or
	// "implicit".
	EnvTLS = "PORTAL_SMTP_TLS"
)

// SMTPFromEnv reads the PORTAL_SMTP_* settings through getenv. ok is false
// when PORTAL_SMTP_ADDRESS is unset: no SMTP.
func SMTPFromEnv(getenv func(string) string) (c SMTPConfig, ok bool, err error) {
	c = SMTPConfig{
		Address: getenv(EnvAddress), From: getenv(EnvFrom),
		Username: getenv(EnvUsername), Password: getenv(EnvPassword),
	}
	if c.Address == "" {
		return c, false, nil
	}
	switch strings.ToLower(getenv(EnvTLS)) {
	case "", "starttls":
	case "implicit":
		c.ImplicitTLS = true
	default:
		return c, false, fmt.Errorf("%s: %q is neither starttls nor implicit", EnvTLS, getenv(EnvTLS))
	}
	return c, true, c.check()
}

func (c SMTPConfig) check() error {
	if _, _, err := net.SplitHostPort(c.Address); err != nil {
		return fmt.Errorf("%s: %q is not host:port", EnvAddress, c.Address)
	}
	if _, err := ValidAddress(c.From); err != nil {
		return fmt.Errorf("%s: %w", EnvFrom, err)
	}
	if (c.Username == "") != (c.Password == "") {
		return fmt.Errorf("%s and %s go together", EnvUsername, EnvPassword)
	}
	return nil
}

// ErrNoTLS: credentials are set but the server offers no STARTTLS.
var ErrNoTLS = errors.New("mail: the SMTP server offers no STARTTLS; the password is not sent in the clear")

// SMTP sends through an SMTP server.
type SMTP struct{ c SMTPConfig }

// NewSMTP checks c and returns a sender using it.
func NewSMTP(c SMTPConfig) (*SMTP, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	return &SMTP{c: c}, nil
}

// String names the server, for the start-up log.
func (s *SMTP) String() string {
	mode := "starttls when offered"
	if s.c.ImplicitTLS {
		mode = "implicit tls"
	}
	return "smtp " + s.c.Address + " (" + mode + ")"
}

// Send delivers m in one SMTP exchange. A 5xx answer is a *PermanentError.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	to, err := ValidAddress(m.To)
	if err != nil {
		return &PermanentError{Err: err}
	}
	body, err := encode(s.c.From, m, time.Now())
	if err != nil {
		return &PermanentError{Err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, s.c.Timeout)
	defer cancel()
	host, _, _ := net.SplitHostPort(s.c.Address)
	tc := s.tlsConfig(host)
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.c.Address)
	if err != nil {
		return fmt.Errorf("mail: dial %s: %w", s.c.Address, err)
	}
	// The deadline bounds every read and write; closing on cancel ends a
	// server that stalls mid-line.
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if s.c.ImplicitTLS {
		conn = tls.Client(conn, tc)
	}
	cl, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return classify(err)
	}
	defer cl.Close()
	secure := s.c.ImplicitTLS
	if !secure {
		if ok, _ := cl.Extension("STARTTLS"); ok {
			if err := cl.StartTLS(tc); err != nil {
				return classify(err)
			}
			secure = true
		}
	}
	if s.c.Username != "" {
		// A password never crosses a connection in the clear, not even to
		// localhost (where net/smtp's PLAIN would allow it).
		if !secure {
			return ErrNoTLS
		}
		if err := cl.Auth(smtp.PlainAuth("", s.c.Username, s.c.Password, host)); err != nil {
			return classify(err)
		}
	}
	if err := cl.Mail(s.c.From); err != nil {
		return classify(err)
	}
	if err := cl.Rcpt(to); err != nil {
		return classify(err)
	}
	w, err := cl.Data()
	if err != nil {
		return classify(err)
	}
	if _, err := w.Write(body); err != nil {
		return classify(err)
	}
	if err := w.Close(); err != nil {
		return classify(err)
	}
	return classify(cl.Quit())
}

func (s *SMTP) tlsConfig(host string) *tls.Config {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.c.TLS != nil {
		tc = s.c.TLS.Clone()
	}
	if tc.ServerName == "" {
		tc.ServerName = host
	}
	return tc
}

// classify makes a 5xx answer permanent; anything else (4xx, network) may
// pass if tried again.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 500 {
		return &PermanentError{Err: err}
	}
	return fmt.Errorf("mail: smtp: %w", err)
}
