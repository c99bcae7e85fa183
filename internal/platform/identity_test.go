package platform_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go-micro.dev/v4/client"

	pauth "github.com/portal-go/portal/internal/auth"
	"github.com/portal-go/portal/internal/platform"
	"github.com/portal-go/portal/internal/svcid"
	"github.com/portal-go/portal/internal/testenv"
	userpb "github.com/portal-go/portal/proto/user"
)

// callerUser records, for each User.Health call, the calling service as
// the server knows it (svcid.Caller) and the end client (auth.ClientOf).
type callerUser struct {
	userpb.UserHandler
	mu      sync.Mutex
	callers []string
	clients []pauth.Client
}

func (u *callerUser) Health(ctx context.Context, _ *userpb.HealthRequest, rsp *userpb.HealthResponse) error {
	c, _ := pauth.ClientOf(ctx)
	u.mu.Lock()
	u.callers, u.clients = append(u.callers, svcid.Caller(ctx)), append(u.clients, c)
	u.mu.Unlock()
	rsp.Status = "ok"
	return nil
}

func (u *callerUser) last() (string, pauth.Client) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.callers[len(u.callers)-1], u.clients[len(u.clients)-1]
}

// identityTLS is mutual TLS with a certificate from p naming service only
// (a DNS SAN svcid.DNSName(service), no IP address: the addresses the
// services listen on and dial are in no certificate); expired makes it one
// that expired yesterday, which LoadMutualTLS would refuse, so the configs
// are built here as LoadMutualTLS builds them.
func identityTLS(t *testing.T, p *testenv.PKI, service string, expired bool) *platform.TLS {
	t.Helper()
	tmpl := testenv.LeafTemplate()
	tmpl.IPAddresses, tmpl.DNSNames = nil, []string{svcid.DNSName(service)}
	name := service
	if expired {
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour)
		name += "-expired"
	}
	certFile, keyFile := p.IssueTemplate(t, name, tmpl)
	if !expired {
		tc, err := platform.LoadTLSFiles(certFile, keyFile, p.CAFile)
		if err != nil {
			t.Fatal(err)
		}
		if got := tc.Service(); got != service {
			t.Fatalf("certificate names %q, want %q", got, service)
		}
		return tc
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(p.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	cas := x509.NewCertPool()
	cas.AppendCertsFromPEM(caPEM)
	return &platform.TLS{
		Server: &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: cas, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12},
		Client: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: cas, MinVersion: tls.VersionTLS12},
	}
}

// Mutual TLS by service name, over real RPC on 127.0.0.1 with certificates
// that name services and no address: a caller reaches the service it meant
// to call and the server learns who called (gRPC); a server whose
// certificate names another service, comes from another CA or has expired
// is refused, as is a caller with an expired certificate.
func TestServiceIdentity(t *testing.T) {
	ca, other := testenv.NewPKI(t, "portal"), testenv.NewPKI(t, "other")
	web, user, system := identityTLS(t, ca, "web", false), identityTLS(t, ca, "user", false), identityTLS(t, ca, "system", false)
	otherUser := identityTLS(t, other, "user", false)
	expiredUser, expiredWeb := identityTLS(t, ca, "user", true), identityTLS(t, ca, "web", true)

	// Under mucp the server cannot see the caller's certificate: no name.
	for rpc, sees := range map[string]bool{"grpc": true, "mucp": false} {
		t.Run(rpc, func(t *testing.T) {
			// serve starts a server registered as "user", alone in a
			// registry of its own, with certificate tc; call calls it
			// as a service with certificate from.
			serve := func(tc *platform.TLS) (platform.Plugins, *callerUser) {
				p := testPlugins()
				p.RPC, p.TLS = rpc, tc
				h := &callerUser{}
				srv := platform.NewService("user", p, quiet())
				if err := userpb.RegisterUserHandler(srv.Server(), h); err != nil {
					t.Fatal(err)
				}
				start(t, srv)
				return p, h
			}
			call := func(p platform.Plugins, from *platform.TLS) error {
				p.TLS = from
				cli := platform.NewService("caller", p, quiet())
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_, err := userpb.NewUserService("user", cli.Client()).Health(ctx, &userpb.HealthRequest{},
					client.WithRequestTimeout(5*time.Second), platform.Timeout(5*time.Second), client.WithRetries(0))
				return err
			}

			p, h := serve(user)
			for from, tc := range map[string]*platform.TLS{"web": web, "system": system} {
				if err := call(p, tc); err != nil {
					t.Fatalf("%s -> user: %v", from, err)
				}
				want := ""
				if sees {
					want = from
				}
				if got, _ := h.last(); got != want {
					t.Errorf("%s -> user: the server saw caller %q, want %q", from, got, want)
				}
			}
			if err := call(p, expiredWeb); err == nil {
				t.Error("a caller with an expired certificate: call succeeded")
			}

			for _, c := range []struct {
				name   string
				server *platform.TLS
				want   string
			}{
				{"a server whose certificate names system", system, "user.portal.svc"},
				{"a server with a certificate from another CA", otherUser, "unknown authority"},
				{"a server with an expired certificate", expiredUser, "expired"},
			} {
				p, h := serve(c.server)
				err := call(p, web)
				if err == nil {
					t.Errorf("%s: call succeeded", c.name)
					continue
				}
				if !strings.Contains(err.Error(), c.want) {
					t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
				}
				h.mu.Lock()
				if len(h.callers) != 0 {
					t.Errorf("%s: the request reached the handler", c.name)
				}
				h.mu.Unlock()
			}
		})
	}
}

// The gateway's mutual-TLS identity is a second proof of the end client:
// user believes the client web names even when web signs with another
// gateway key, and not when system (another identity) does the same; the
// signature alone still works (TestClientProofOverRPC).
func TestGatewayIdentityProvesClient(t *testing.T) {
	ca := testenv.NewPKI(t, "portal")
	p := testPlugins()
	p.TLS = identityTLS(t, ca, "user", false)
	h := &callerUser{}
	srv := platform.NewService("user", p, quiet())
	srv.UseClientProof(newProof(t, "k"))
	if err := userpb.RegisterUserHandler(srv.Server(), h); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()

	client := pauth.Client{Addr: "203.0.113.7", UserAgent: "agent/1"}
	for _, c := range []struct {
		service string
		want    pauth.Client
	}{
		{"web", client},
		{"system", pauth.Client{Addr: "127.0.0.1"}},
	} {
		p.TLS = identityTLS(t, ca, c.service, false)
		cli := platform.NewService(c.service, p, quiet())
		cli.UseClientProof(newProof(t, "x")) // not user's key
		if _, err := userpb.NewUserService("user", cli.Client()).Health(pauth.WithClient(context.Background(), client), &userpb.HealthRequest{}); err != nil {
			t.Fatal(err)
		}
		if caller, got := h.last(); caller != c.service || got != c.want {
			t.Errorf("%s, signing with another key: user saw caller %q, client %+v; want %q, %+v", c.service, caller, got, c.service, c.want)
		}
	}
}
