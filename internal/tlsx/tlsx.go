// Package tlsx makes the TLS client configs Portal's backend clients (etcd,
// Redis, NATS) use: TLS 1.2 or newer, the server verified against a CA file
// or the system's CAs, never skipped.
package tlsx

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// Client is a client config that trusts the PEM CA(s) in caFile, or the
// system's CAs when caFile is "". setting names caFile in errors
// (PORTAL_ETCD_CA_FILE, ...).
func Client(caFile, setting string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return c, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", setting, err)
	}
	c.RootCAs = x509.NewCertPool()
	if !c.RootCAs.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s %s: no PEM certificate in it", setting, caFile)
	}
	return c, nil
}
