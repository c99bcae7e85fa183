package platform_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/registry"

	"github.com/portal-go/portal/internal/platform"
	"github.com/portal-go/portal/internal/svcid"
	"github.com/portal-go/portal/internal/testenv"
	systempb "github.com/portal-go/portal/proto/system"
)

// pki is a throwaway CA and one service certificate it signed, as PEM files.
type pki struct {
	caFile, certFile, keyFile string
	ca                        *x509.Certificate
	issuer                    *testenv.PKI
}

// newPKI makes a CA named name and a service certificate it signed, naming
// the service tls.system (svcid.DNSName) that TestMutualTLS calls, usable
// to serve and to call.
func newPKI(t *testing.T, name string) pki {
	t.Helper()
	p := testenv.NewPKI(t, name)
	cert, key := p.Issue(t, name+"-service", svcid.DNSName("tls.system"))
	return pki{caFile: p.CAFile, certFile: cert, keyFile: key, ca: p.CA, issuer: p}
}

func (p pki) load(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	s, c, err := platform.LoadMutualTLS(p.certFile, p.keyFile, p.caFile)
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

// health answers Health and ListServices; any other System call panics (the
// embedded handler is nil).
type health struct{ systempb.SystemHandler }

func (health) Health(_ context.Context, _ *systempb.HealthRequest, rsp *systempb.HealthResponse) error {
	rsp.Status = "ok"
	return nil
}

func (health) ListServices(context.Context, *systempb.ListServicesRequest, *systempb.ListServicesResponse) error {
	return nil
}

func quiet() *slog.Logger {
	if os.Getenv("PORTAL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// start starts srv and stops it when the test ends.
func start(t *testing.T, srv *platform.Service) {
	t.Helper()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
}

func TestMutualTLS(t *testing.T) {
	good, other := newPKI(t, "portal"), newPKI(t, "other")
	goodServer, goodClient := good.load(t)
	otherServer, otherClient := other.load(t)
	goodCAs := x509.NewCertPool()
	goodCAs.AddCert(good.ca)
	otherCAs := x509.NewCertPool()
	otherCAs.AddCert(other.ca)

	for _, rpc := range []string{"grpc", "mucp"} {
		// TLS given to NewService, or to UseTLS once the service is built
		// (as RunService does after go-micro's cmd parsed the flags).
		for _, late := range []bool{false, true} {
			name := rpc + "/Plugins.TLS"
			if late {
				name = rpc + "/UseTLS"
			}
			t.Run(name, func(t *testing.T) {
				reg, br := registry.NewMemoryRegistry(), broker.NewMemoryBroker()
				build := func(name string, tc *platform.TLS) *platform.Service {
					p := platform.Plugins{Registry: reg, Broker: br, Address: "127.0.0.1:0", RPC: rpc}
					if !late {
						p.TLS = tc
					}
					svc := platform.NewService(name, p, quiet())
					if late && tc != nil {
						if err := svc.UseTLS(*tc); err != nil {
							t.Fatal(err)
						}
					}
					return svc
				}
				srv := build("tls.system", &platform.TLS{Server: goodServer, Client: goodClient})
				if err := systempb.RegisterSystemHandler(srv.Server(), health{}); err != nil {
					t.Fatal(err)
				}
				if err := srv.Start(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = srv.Stop() })

				call := func(tc *platform.TLS) error {
					cli := build("tls.client", tc)
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					rsp, err := systempb.NewSystemService("tls.system", cli.Client()).Health(ctx, &systempb.HealthRequest{},
						client.WithRequestTimeout(2*time.Second), platform.Timeout(2*time.Second), client.WithRetries(0))
					if err == nil && rsp.Status != "ok" {
						t.Errorf("status %q", rsp.Status)
					}
					return err
				}

				start := time.Now()
				if err := call(&platform.TLS{Server: goodServer, Client: goodClient}); err != nil {
					t.Fatalf("client with a certificate from the CA: %v", err)
				}
				// Concurrent first calls dial concurrently: with -race, this
				// checks that dials share no config they write.
				par := build("tls.parallel", &platform.TLS{Server: goodServer, Client: goodClient})
				errs := make(chan error, 8)
				for range cap(errs) {
					go func() {
						_, err := systempb.NewSystemService("tls.system", par.Client()).Health(context.Background(), &systempb.HealthRequest{},
							client.WithRequestTimeout(2*time.Second), platform.Timeout(2*time.Second), client.WithRetries(0))
						errs <- err
					}()
				}
				for range cap(errs) {
					if err := <-errs; err != nil {
						t.Errorf("concurrent call: %v", err)
					}
				}

				refused := []struct {
					name string
					tls  *platform.TLS
				}{
					{"plain client", nil},
					{"TLS client without a certificate", &platform.TLS{Server: goodServer, Client: &tls.Config{RootCAs: goodCAs, MinVersion: tls.VersionTLS12}}},
					// It trusts the server: the server is what refuses it. Go's
					// client only sends a certificate from a CA the server
					// names, so as not to test just that, this one is sent
					// whatever the server asks (a client certificate of its
					// own).
					{"certificate from another CA", &platform.TLS{Server: otherServer, Client: &tls.Config{
						GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &otherClient.Certificates[0], nil },
						RootCAs:              goodCAs, MinVersion: tls.VersionTLS12}}},
					{"certificate from another CA, sent only if asked for", &platform.TLS{Server: otherServer, Client: &tls.Config{Certificates: otherClient.Certificates, RootCAs: goodCAs, MinVersion: tls.VersionTLS12}}},
					// Its certificate is good, the server's is not one it trusts.
					{"client trusting another CA", &platform.TLS{Server: goodServer, Client: &tls.Config{Certificates: goodClient.Certificates, RootCAs: otherCAs, MinVersion: tls.VersionTLS12}}},
				}
				for _, c := range refused {
					err := call(c.tls)
					if err == nil {
						t.Errorf("%s: call succeeded", c.name)
						continue
					}
					if strings.Contains(err.Error(), "not found") {
						t.Errorf("%s: %v (wanted a refused connection, not a lookup failure)", c.name, err)
					}
					t.Logf("%s: refused: %v", c.name, err)
				}
				if d := time.Since(start); d > 15*time.Second {
					t.Errorf("took %v", d)
				}
			})
		}
	}
}

func TestLoadMutualTLS(t *testing.T) {
	good, other := newPKI(t, "portal"), newPKI(t, "other")
	s, c := good.load(t)
	if s.ClientAuth != tls.RequireAndVerifyClientCert || s.ClientCAs == nil || len(s.Certificates) != 1 || s.MinVersion != tls.VersionTLS12 {
		t.Errorf("server config: %+v", s)
	}
	if c.RootCAs == nil || len(c.Certificates) != 1 || c.MinVersion != tls.VersionTLS12 {
		t.Errorf("client config: %+v", c)
	}

	// A certificate for serving only: a service also calls.
	dir := t.TempDir()
	tmpl := testenv.LeafTemplate()
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	serverOnly, serverOnlyKey := good.issuer.IssueTemplate(t, "server-only", tmpl)

	for _, c := range []struct {
		name, cert, key, ca, want string
	}{
		{"another CA", good.certFile, good.keyFile, other.caFile, "not valid for serverAuth"},
		{"serverAuth only", serverOnly, serverOnlyKey, good.caFile, "not valid for clientAuth"},
		{"key of another certificate", good.certFile, other.keyFile, good.caFile, "private key does not match"},
		{"CA not PEM", good.certFile, good.keyFile, good.keyFile, "no PEM certificate"},
		{"missing file", good.certFile, good.keyFile, filepath.Join(dir, "missing.crt"), "no such file"},
	} {
		_, _, err := platform.LoadMutualTLS(c.cert, c.key, c.ca)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
	}

	if tc, err := platform.LoadTLSFiles("", "", ""); tc != nil || err != nil {
		t.Errorf("no files: %v, %v; want nil, nil", tc, err)
	}
	if _, err := platform.LoadTLSFiles(good.certFile, good.keyFile, ""); err == nil {
		t.Error("two files of three: no error")
	}
	if tc, err := platform.LoadTLSFiles(good.certFile, good.keyFile, good.caFile); err != nil || tc.Server == nil || tc.Client == nil {
		t.Errorf("three files: %v, %v", tc, err)
	}
}
