package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// PKI is a throwaway CA whose certificate and key are PEM files in a
// temporary directory, to issue the certificates of TLS servers and
// clients in a test.
type PKI struct {
	// CAFile is the CA certificate (PEM), CA the same parsed.
	CAFile string
	CA     *x509.Certificate
	dir    string
	key    *ecdsa.PrivateKey
}

var pkiSerial atomic.Int64

// NewPKI makes a CA called name.
func NewPKI(t testing.TB, name string) *PKI {
	t.Helper()
	p := &PKI{dir: t.TempDir()}
	tmpl := &x509.Certificate{
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	p.CA, p.key, p.CAFile, _ = p.write(t, name+"-ca", tmpl, nil, nil)
	return p
}

// Issue makes a certificate called name, signed by the CA, for serving and
// calling: its SANs are 127.0.0.1, localhost and dnsNames. It returns the
// certificate's and its key's files.
func (p *PKI) Issue(t testing.TB, name string, dnsNames ...string) (certFile, keyFile string) {
	t.Helper()
	return p.IssueTemplate(t, name, LeafTemplate(dnsNames...))
}

// LeafTemplate is the template Issue signs: serverAuth and clientAuth, for
// 127.0.0.1, localhost and dnsNames.
func LeafTemplate(dnsNames ...string) *x509.Certificate {
	return &x509.Certificate{
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:    append([]string{"localhost"}, dnsNames...),
	}
}

// IssueTemplate makes a certificate called name from tmpl (its serial,
// subject and validity are set here), signed by the CA.
func (p *PKI) IssueTemplate(t testing.TB, name string, tmpl *x509.Certificate) (certFile, keyFile string) {
	t.Helper()
	_, _, certFile, keyFile = p.write(t, name, tmpl, p.CA, p.key)
	return certFile, keyFile
}

// write makes a certificate from tmpl signed by parent (self-signed when
// nil) and writes it and its new key as PEM files.
func (p *PKI) write(t testing.TB, name string, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(pkiSerial.Add(1))
	tmpl.Subject = pkix.Name{CommonName: name}
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(p.dir, name+".crt"), filepath.Join(p.dir, name+".key")
	for file, b := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(file, pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return cert, key, certFile, keyFile
}
