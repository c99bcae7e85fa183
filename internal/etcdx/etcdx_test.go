package etcdx_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go-micro.dev/v4/registry"

	"github.com/portal-go/portal/internal/etcdx"
	"github.com/portal-go/portal/internal/testenv"
)

func TestEndpoints(t *testing.T) {
	for _, c := range []struct {
		addrs  []string
		want   string
		secure bool
	}{
		{nil, "127.0.0.1:2379", false},
		{[]string{"10.0.0.1:2379", " 10.0.0.2 "}, "10.0.0.1:2379,10.0.0.2:2379", false},
		{[]string{"http://etcd:2379/"}, "etcd:2379", false},
		{[]string{"https://etcd-0.etcd:2379", "etcd-1.etcd:2379"}, "etcd-0.etcd:2379,etcd-1.etcd:2379", true},
	} {
		eps, secure := etcdx.Settings{Addrs: c.addrs}.Endpoints()
		if got := strings.Join(eps, ","); got != c.want || secure != c.secure {
			t.Errorf("%q: %s %v, want %s %v", c.addrs, got, secure, c.want, c.secure)
		}
	}
}

// TestTLSNeverSkipsVerification: an https:// address without a CA verifies
// against the system's CAs, never InsecureSkipVerify (what go-micro's
// plugin does with Secure alone).
func TestTLSNeverSkipsVerification(t *testing.T) {
	c, err := etcdx.Settings{Addrs: []string{"https://etcd:2379"}}.TLS()
	if err != nil || c == nil || c.InsecureSkipVerify {
		t.Fatalf("TLS() = %+v, %v: want verification on", c, err)
	}
	if c, _ := (etcdx.Settings{Addrs: []string{"etcd:2379"}}).TLS(); c != nil {
		t.Fatalf("plain address: TLS on")
	}
}

func TestHalfSettingsRefused(t *testing.T) {
	for _, s := range []etcdx.Settings{
		{Username: "portal"},
		{Password: "secret"},
		{CAFile: "/x", CertFile: "/cert"},
	} {
		if _, err := s.Config(); err == nil {
			t.Errorf("%+v: no error", s)
		}
	}
}

// TestSecureEtcd runs etcd with TLS, client certificates and
// authentication, and checks that Portal's settings reach it, and that each
// wrong setting is refused at Check with a message that names it.
func TestSecureEtcd(t *testing.T) {
	pki := testenv.NewPKI(t, "etcd")
	etcd := testenv.StartSecureEtcd(t, testenv.EtcdOptions{PKI: pki, ClientCerts: true, Auth: true})
	cert, key := pki.Issue(t, "portal-client")
	good := etcdx.Settings{
		Addrs: []string{"https://" + etcd.Addr}, CAFile: pki.CAFile, CertFile: cert, KeyFile: key,
		Username: etcd.User, Password: etcd.Password,
	}
	ctx := context.Background()
	if err := etcdx.Check(ctx, good); err != nil {
		t.Fatalf("Check with the right settings: %v", err)
	}

	// The registry plugin on the same settings registers and finds a node.
	reg, err := good.Registry()
	if err != nil {
		t.Fatalf("Registry: %v", err)
	}
	svc := &registry.Service{Name: "probe", Version: "1", Nodes: []*registry.Node{{Id: "probe-1", Address: "127.0.0.1:1"}}}
	if err := reg.Register(svc, registry.RegisterTTL(time.Minute)); err != nil {
		t.Fatalf("Register: %v", err)
	}
	if got, err := reg.GetService("probe"); err != nil || len(got) != 1 || len(got[0].Nodes) != 1 {
		t.Fatalf("GetService: %v, %v", got, err)
	}
	if keys := etcd.Keys(t, "/micro/registry/probe/"); len(keys) != 1 {
		t.Fatalf("etcd holds %q under /micro/registry/probe/", keys)
	}

	otherCA := testenv.NewPKI(t, "other")
	wrongCA := good
	wrongCA.CAFile = otherCA.CAFile
	noCert := good
	noCert.CertFile, noCert.KeyFile = "", ""
	wrongPassword := good
	wrongPassword.Password = "wrong"
	noUser := good
	noUser.Username, noUser.Password = "", ""
	for _, c := range []struct {
		name string
		s    etcdx.Settings
		want string
	}{
		{"wrong CA", wrongCA, "PORTAL_ETCD_CA_FILE"},
		{"no client certificate", noCert, "PORTAL_ETCD_CERT_FILE"},
		{"wrong password", wrongPassword, "ETCD_PASSWORD"},
		{"no credentials", noUser, "set ETCD_USERNAME and ETCD_PASSWORD"},
	} {
		err := etcdx.Check(ctx, c.s)
		if err == nil || !strings.Contains(err.Error(), c.want) || errors.Is(err, etcdx.ErrUnreachable) {
			t.Errorf("%s: Check = %v, want an error naming %s", c.name, err, c.want)
		}
	}
	if _, err := wrongPassword.Registry(); err == nil {
		t.Errorf("Registry with a wrong password: no error")
	}
}

// TestCheckUnreachable: nothing listening is ErrUnreachable, not a
// settings error.
func TestCheckUnreachable(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	pki := testenv.NewPKI(t, "none")
	err := etcdx.Check(context.Background(), etcdx.Settings{Addrs: []string{"https://" + addr}, CAFile: pki.CAFile})
	if !errors.Is(err, etcdx.ErrUnreachable) {
		t.Fatalf("Check = %v, want ErrUnreachable", err)
	}
}
