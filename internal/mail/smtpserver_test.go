package mail

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// testServer is a real SMTP server (emersion/go-smtp) on a loopback port
// that keeps what arrives.
type testServer struct {
	srv  *smtp.Server
	Addr string
	// Roots trusts the server's certificate.
	Roots *x509.CertPool

	mu       sync.Mutex
	received []received
	// failMail answers the next failMail MAIL commands 451.
	failMail int
	// refuseRcpt answers RCPT 550.
	refuseRcpt bool
	// auths are the PLAIN credentials given, "user:pass".
	auths []string
}

// received is one message that arrived.
type received struct {
	From, To string
	TLS      bool
	Data     []byte
}

type serverOptions struct {
	// tls: offer STARTTLS (or, with implicit, speak TLS from the start).
	tls, implicit bool
	// user, pass: require AUTH PLAIN with these.
	user, pass string
}

func startSMTP(t *testing.T, o serverOptions) *testServer {
	t.Helper()
	ts := &testServer{}
	srv := smtp.NewServer(ts)
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 30*time.Second, 30*time.Second
	srv.MaxMessageBytes = 1 << 20
	var cert tls.Certificate
	if o.tls {
		cert, ts.Roots = selfSigned(t)
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	var l net.Listener
	var err error
	if o.implicit {
		l, err = tls.Listen("tcp", "127.0.0.1:0", srv.TLSConfig)
	} else {
		l, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	ts.Addr = l.Addr().String()
	ts.srv = srv
	if o.user != "" {
		ts.auths = []string{} // a session must authenticate
		srv.Backend = smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
			return &testSession{ts: ts, conn: c, needAuth: true, user: o.user, pass: o.pass}, nil
		})
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return ts
}

// NewSession implements smtp.Backend.
func (ts *testServer) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &testSession{ts: ts, conn: c}, nil
}

// Messages returns what arrived so far.
func (ts *testServer) Messages() []received {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]received(nil), ts.received...)
}

// set changes the server's behaviour under its lock.
func (ts *testServer) set(f func(ts *testServer)) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	f(ts)
}

type testSession struct {
	ts       *testServer
	conn     *smtp.Conn
	needAuth bool
	user     string
	pass     string
	authed   bool
	from, to string
}

func (s *testSession) AuthMechanisms() []string {
	if !s.needAuth {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *testSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		s.ts.mu.Lock()
		s.ts.auths = append(s.ts.auths, username+":"+password)
		s.ts.mu.Unlock()
		if username != s.user || password != s.pass {
			return smtp.ErrAuthFailed
		}
		s.authed = true
		return nil
	}), nil
}

func (s *testSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.needAuth && !s.authed {
		return smtp.ErrAuthRequired
	}
	s.ts.mu.Lock()
	defer s.ts.mu.Unlock()
	if s.ts.failMail > 0 {
		s.ts.failMail--
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	}
	s.from = from
	return nil
}

func (s *testSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.ts.mu.Lock()
	defer s.ts.mu.Unlock()
	if s.ts.refuseRcpt {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such mailbox"}
	}
	s.to = to
	return nil
}

func (s *testSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, isTLS := s.conn.TLSConnectionState()
	s.ts.mu.Lock()
	defer s.ts.mu.Unlock()
	s.ts.received = append(s.ts.received, received{From: s.from, To: s.to, TLS: isTLS, Data: b})
	return nil
}

func (s *testSession) Reset()        {}
func (s *testSession) Logout() error { return nil }

// parse reads a received message's headers and bodies.
func parse(t *testing.T, r received) (*mail.Message, map[string]string) {
	t.Helper()
	m, err := mail.ReadMessage(bytesReader(r.Data))
	if err != nil {
		t.Fatalf("not a message: %v\n%s", err, r.Data)
	}
	return m, bodies(t, m)
}

// selfSigned makes a certificate for 127.0.0.1 and a pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// restartSMTP starts a plain server at addr (where one was before), polling
// until the port is free.
func restartSMTP(t *testing.T, addr string) *testServer {
	t.Helper()
	ts := &testServer{}
	srv := smtp.NewServer(ts)
	srv.Domain = "localhost"
	var l net.Listener
	waitFor(t, 30*time.Second, "the port to be free", func() bool {
		var err error
		l, err = net.Listen("tcp", addr)
		return err == nil
	})
	ts.Addr, ts.srv = addr, srv
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return ts
}

// waitFor polls cond every 20 ms until it holds, failing the test after d.
// (testenv has the same, but imports the portal, which imports this.)
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
