package svcid

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// Services are the services `portal certs` makes a certificate for.
var Services = []string{"web", "user", "system", "runtime"}

// CertValidity is how long WriteCerts's service certificates are valid;
// the CA's is ten times that.
const CertValidity = 825 * 24 * time.Hour

// WriteCerts makes, in dir, a CA (ca.crt, ca.key) and for each service a
// certificate (<service>.crt, <service>.key) signed by it, naming the
// service (DNSName) and valid to serve and to call; P-256 keys, mode 0600.
// It refuses to overwrite any file, so that a second run cannot replace a
// CA every service trusts.
func WriteCerts(dir string, services []string, now time.Time) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "Portal services CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * CertValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	ca, caKey, err := writePair(dir, "ca", caTmpl, nil, nil)
	if err != nil {
		return err
	}
	for _, svc := range services {
		tmpl := &x509.Certificate{
			Subject:     pkix.Name{CommonName: "portal-" + svc},
			NotBefore:   now.Add(-time.Hour),
			NotAfter:    now.Add(CertValidity),
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			DNSNames:    []string{DNSName(svc)},
		}
		if _, _, err := writePair(dir, svc, tmpl, ca, caKey); err != nil {
			return err
		}
	}
	return nil
}

// writePair signs tmpl with parent (self-signed when nil) under a new key
// and writes <name>.crt and <name>.key.
func writePair(dir, name string, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = serial
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, fmt.Errorf("certificate %s: %w", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	for file, b := range map[string]*pem.Block{name + ".crt": {Type: "CERTIFICATE", Bytes: der}, name + ".key": {Type: "PRIVATE KEY", Bytes: keyDER}} {
		if err := writeNew(filepath.Join(dir, file), pem.EncodeToMemory(b)); err != nil {
			return nil, nil, err
		}
	}
	return cert, key, nil
}

// writeNew writes a file that must not exist yet, mode 0600.
func writeNew(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("certs: %w (remove the directory's files to make new ones)", err)
	}
	_, werr := f.Write(b)
	return errors.Join(werr, f.Close())
}
