package svcid_test

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portal-go/portal/internal/svcid"
)

func TestFromCert(t *testing.T) {
	for _, c := range []struct {
		dns  []string
		want string
	}{
		{[]string{"user.portal.svc"}, "user"},
		{[]string{"localhost", "user.portal.svc", "user.portal.svc"}, "user"},
		{[]string{"user.portal.svc", "web.portal.svc"}, ""}, // two services: neither
		{[]string{"a.user.portal.svc"}, ""},
		{[]string{".portal.svc", "portal.svc", "user.portal.svc.evil"}, ""},
		{nil, ""},
	} {
		if got := svcid.FromCert(&x509.Certificate{DNSNames: c.dns}); got != c.want {
			t.Errorf("%v: %q, want %q", c.dns, got, c.want)
		}
	}
}

// WriteCerts (portal certs) makes a CA and a certificate per service that
// chains to it, names the service and no address, serves and calls; keys
// are 0600; a second run refuses to overwrite.
func TestWriteCerts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	if err := svcid.WriteCerts(dir, svcid.Services, time.Now()); err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	cas := x509.NewCertPool()
	if !cas.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca.crt: no certificate")
	}
	for _, svc := range append([]string{"ca"}, svcid.Services...) {
		fi, err := os.Stat(filepath.Join(dir, svc+".key"))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s.key: %v, %v; want mode 0600", svc, fi.Mode(), err)
		}
		if svc == "ca" {
			continue
		}
		pair, err := tls.LoadX509KeyPair(filepath.Join(dir, svc+".crt"), filepath.Join(dir, svc+".key"))
		if err != nil {
			t.Fatal(err)
		}
		leaf := pair.Leaf
		if got := svcid.FromCert(leaf); got != svc || len(leaf.IPAddresses) != 0 {
			t.Errorf("%s.crt names %q, IPs %v", svc, got, leaf.IPAddresses)
		}
		for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: cas, DNSName: svcid.DNSName(svc), KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
				t.Errorf("%s.crt: %v", svc, err)
			}
		}
	}
	before, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err := svcid.WriteCerts(dir, svcid.Services, time.Now()); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("second run: %v, want a refusal", err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "ca.crt")); string(after) != string(before) {
		t.Error("second run replaced ca.crt")
	}
}
