package platform

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"

	grpcclient "github.com/go-micro/plugins/v4/client/grpc"
	grpcserver "github.com/go-micro/plugins/v4/server/grpc"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/logger"
	"go-micro.dev/v4/server"
	"go-micro.dev/v4/transport"

	"github.com/portal-go/portal/internal/svcid"
)

// TLS is mutual TLS between services: Server is every RPC server's config
// (its certificate; client certificates required and verified against the
// CA), Client every RPC client's (its certificate, presented to servers;
// servers verified against the CA). LoadMutualTLS makes both. A call to a
// service goes with a copy of Client whose ServerName is the callee's
// identity (svcid.DNSName): the server's certificate must chain to the CA
// and name the service called, whatever address was dialed.
type TLS struct {
	Server, Client *tls.Config
}

// Service is the service this TLS's certificate names (svcid.FromCert), ""
// when it names none.
func (t TLS) Service() string {
	if len(t.Client.Certificates) == 0 || t.Client.Certificates[0].Leaf == nil {
		return ""
	}
	return svcid.FromCert(t.Client.Certificates[0].Leaf)
}

// LoadMutualTLS reads a PEM certificate and its key, used both to serve and
// to call, and the PEM CA certificate(s) that sign every service's
// certificate. It checks that the certificate chains to the CA and may be
// used for both server and client authentication, so that a wrong file fails
// at start rather than on every call.
func LoadMutualTLS(certFile, keyFile, caFile string) (server, client *tls.Config, err error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("TLS certificate %s and key %s: %w", certFile, keyFile, err)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, nil, fmt.Errorf("TLS CA: %w", err)
	}
	cas := x509.NewCertPool()
	if !cas.AppendCertsFromPEM(caPEM) {
		return nil, nil, fmt.Errorf("TLS CA %s: no PEM certificate in it", caFile)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, nil, fmt.Errorf("TLS certificate %s: %w", certFile, err)
		}
	}
	cert.Leaf = leaf
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	for _, u := range []struct {
		usage x509.ExtKeyUsage
		name  string
	}{{x509.ExtKeyUsageServerAuth, "serverAuth"}, {x509.ExtKeyUsageClientAuth, "clientAuth"}} {
		opts := x509.VerifyOptions{Roots: cas, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{u.usage}}
		if _, err := leaf.Verify(opts); err != nil {
			return nil, nil, fmt.Errorf("TLS certificate %s, CA %s: not valid for %s (every service both serves and calls: extendedKeyUsage = serverAuth, clientAuth): %w", certFile, caFile, u.name, err)
		}
	}
	server = &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    cas,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}
	client = &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      cas,
		MinVersion:   tls.VersionTLS12,
	}
	return server, client, nil
}

// LoadTLSFiles is LoadMutualTLS for three settings that go together: nil
// when all are empty, an error when only some are given.
func LoadTLSFiles(certFile, keyFile, caFile string) (*TLS, error) {
	if certFile == "" && keyFile == "" && caFile == "" {
		return nil, nil
	}
	if certFile == "" || keyFile == "" || caFile == "" {
		return nil, errors.New("mutual TLS needs all three of the certificate, its key and the CA, or none of them")
	}
	s, c, err := LoadMutualTLS(certFile, keyFile, caFile)
	if err != nil {
		return nil, err
	}
	return &TLS{Server: s, Client: c}, nil
}

// UseTLS makes s's RPC mutual TLS: for a service whose certificates are
// known only after it is built (go-micro's cmd parses the flags). It must
// run before Start and before any call.
func (s *Service) UseTLS(t TLS) error {
	so, co := tlsOptions(t, s.Server().String(), s.Server().Options().Logger)
	if err := s.Server().Init(so...); err != nil {
		return err
	}
	if err := s.Client().Init(co...); err != nil {
		return err
	}
	s.callTLS.Store(&callTLS{cfg: t.Client, rpc: s.Server().String(), log: s.Server().Options().Logger})
	return nil
}

// callTLS is what a service's calls need to reach each callee over mutual
// TLS by its name: the client config and the RPC protocol.
type callTLS struct {
	cfg *tls.Config
	rpc string
	log logger.Logger
}

// byService is the innermost client wrapper: under mutual TLS, each callee
// service gets a client of its own (serviceClients).
func (s *Service) byService(c client.Client) client.Client {
	return &serviceClients{Client: c, s: s, clients: map[string]client.Client{}}
}

// serviceClients sends each call to a client made for its callee (made on
// the first call, from the service's client options as they are by then):
// its TLS config names the callee (ServerName), so crypto/tls verifies the
// server's chain and that its certificate names that service, and its
// connection pool is its own, so a connection made to one service is never
// reused for a call to another listed at the same address. Without mutual
// TLS calls go to the service's client as they are.
type serviceClients struct {
	client.Client
	s       *Service
	mu      sync.Mutex
	clients map[string]client.Client
}

// to is the client for calls to service.
func (c *serviceClients) to(service string) client.Client {
	t := c.s.callTLS.Load()
	if t == nil {
		return c.Client
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.clients[service]; ok {
		return cl
	}
	cfg := t.cfg.Clone()
	cfg.ServerName = svcid.DNSName(service)
	base := c.Client.Options()
	keep := func(o *client.Options) { *o = base; o.Wrappers = nil }
	var cl client.Client
	if t.rpc == "mucp" {
		cl = client.NewClient(keep, client.Transport(&tlsDialer{Transport: transport.NewHTTPTransport(transport.Logger(t.log), transport.Secure(true), transport.TLSConfig(cfg)), cfg: cfg}))
	} else {
		cl = grpcclient.NewClient(keep, grpcclient.AuthTLS(cfg))
	}
	c.clients[service] = cl
	return cl
}

// Call sends the call with the callee's client.
func (c *serviceClients) Call(ctx context.Context, req client.Request, rsp interface{}, opts ...client.CallOption) error {
	return c.to(req.Service()).Call(ctx, req, rsp, opts...)
}

// Stream opens the stream with the callee's client.
func (c *serviceClients) Stream(ctx context.Context, req client.Request, opts ...client.CallOption) (client.Stream, error) {
	return c.to(req.Service()).Stream(ctx, req, opts...)
}

// tlsOptions are the server and client options that make the RPC protocol
// rpc ("grpc" or "mucp") mutual TLS.
//
// gRPC: the plugins' AuthTLS. The server plugin turns its config into
// grpc.Creds(credentials.NewTLS(...)), the client plugin into
// grpc.WithTransportCredentials(credentials.NewTLS(...)); gRPC's credentials
// add the "h2" ALPN protocol both ends require. server.TLSConfig is not used
// with gRPC: the server plugin would only wrap its listener in tls.Listen
// with that config, without ALPN, so that gRPC clients refuse it, and the
// option also initialises the server's transport, which for the gRPC server
// is go-micro's process-wide transport.DefaultTransport.
//
// mucp: go-micro's http transport uses one TLSConfig both to listen and to
// dial, so server and client get a transport each: the server's listens with
// the server config; the client's dials with the client config.
func tlsOptions(t TLS, rpc string, l logger.Logger) ([]server.Option, []client.Option) {
	if rpc == "mucp" {
		srv := mucpTransport{transport.NewHTTPTransport(transport.Logger(l), transport.Secure(true), transport.TLSConfig(t.Server))}
		cli := &tlsDialer{Transport: transport.NewHTTPTransport(transport.Logger(l), transport.Secure(true), transport.TLSConfig(t.Client)), cfg: t.Client}
		// server.TLSConfig after server.Transport: it re-initialises the
		// server's transport (already this one) and records the config.
		return []server.Option{server.Transport(srv), server.TLSConfig(t.Server)}, []client.Option{client.Transport(cli)}
	}
	return []server.Option{grpcserver.AuthTLS(t.Server)}, []client.Option{grpcclient.AuthTLS(t.Client)}
}

// tlsDialer is a mucp client's transport: go-micro's http transport, dialing
// with a copy of the client config each time. The transport writes
// NextProtos into its own TLSConfig on every Dial, a data race between
// concurrent dials sharing one config.
type tlsDialer struct {
	transport.Transport
	cfg *tls.Config
}

// Dial dials addr over TLS with a fresh copy of the config.
func (d *tlsDialer) Dial(addr string, opts ...transport.DialOption) (transport.Client, error) {
	o := d.Transport.Options()
	o.Secure, o.TLSConfig = true, d.cfg.Clone()
	return transport.NewHTTPTransport(func(to *transport.Options) { *to = o }).Dial(addr, opts...)
}
