// Package svcid is the identity of Portal's services under mutual TLS: each
// service's certificate names it with a DNS SAN "<service>.portal.svc".
// Callers check that name, not the address they dial; servers read it from
// the caller's verified certificate (Caller).
//
// Why a DNS SAN and not a SPIFFE URI (spiffe://portal/user): Go's crypto/tls
// verifies a DNS name itself, chain and name in one standard step, when the
// client sets tls.Config.ServerName to it. A URI SAN would need the client
// to switch that verification off (InsecureSkipVerify) and redo it in a
// VerifyConnection of its own: more code where a mistake accepts anyone.
// The name is an identity, never resolved: it need not exist in any DNS
// (in Kubernetes it happens to read like the Service "user" in namespace
// "portal", which is harmless).
package svcid

import (
	"context"
	"crypto/x509"
	"strings"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// Domain is what follows the service name in its certificate's DNS SAN.
const Domain = "portal.svc"

// DNSName is the DNS SAN naming service.
func DNSName(service string) string { return service + "." + Domain }

// FromCert is the service c names: the one DNS SAN "<service>.portal.svc"
// with no dot in <service>; "" when it names none or more than one.
func FromCert(c *x509.Certificate) string {
	name := ""
	for _, d := range c.DNSNames {
		svc, ok := strings.CutSuffix(d, "."+Domain)
		if !ok || svc == "" || strings.Contains(svc, ".") {
			continue
		}
		if name != "" && name != svc {
			return ""
		}
		name = svc
	}
	return name
}

// Caller is the service that made the call handled with ctx, as its
// verified client certificate names it (FromCert): "" without mutual TLS,
// for a certificate naming no service, and under mucp, whose server keeps
// the connection's TLS state from its handlers. Only a chain the server
// verified counts (tls.RequireAndVerifyClientCert).
func Caller(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return ""
	}
	return FromCert(info.State.VerifiedChains[0][0])
}
