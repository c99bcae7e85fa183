package portal

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/portal-go/portal/internal/etcdx"
)

// TestParseEtcdSettings: MICRO_REGISTRY=etcd is not connected while the
// flags are parsed (go-micro's cmd would exit the process on a refused
// password); the https:// address, the PORTAL_ETCD_* files and
// ETCD_USERNAME / ETCD_PASSWORD land in one Settings that the registry and
// the config center share.
func TestParseEtcdSettings(t *testing.T) {
	t.Setenv("ETCD_USERNAME", "portal")
	t.Setenv("ETCD_PASSWORD", "secret")
	t.Setenv("PORTAL_ETCD_CA_FILE", "/etc/portal/etcd-ca.pem")
	s, err := ParseService("user", []string{
		"--registry", "etcd", "--registry_address", "https://etcd-0:2379,https://etcd-1:2379",
		"--etcd_cert_file", "/c.pem", "--etcd_key_file", "/k.pem", "--config", "etcd",
	}, io.Discard)
	if err != nil {
		t.Fatalf("ParseService: %v", err)
	}
	if _, ok := s.Registry.(*etcdx.Pending); !ok {
		t.Fatalf("registry %T, want *etcdx.Pending until Build", s.Registry)
	}
	eps, secure := s.Etcd.Endpoints()
	want := etcdx.Settings{
		Addrs: []string{"https://etcd-0:2379", "https://etcd-1:2379"}, CAFile: "/etc/portal/etcd-ca.pem",
		CertFile: "/c.pem", KeyFile: "/k.pem", Username: "portal", Password: "secret",
	}
	if strings.Join(eps, ",") != "etcd-0:2379,etcd-1:2379" || !secure || strings.Join(s.Etcd.Addrs, ",") != strings.Join(want.Addrs, ",") ||
		s.Etcd.CAFile != want.CAFile || s.Etcd.CertFile != want.CertFile || s.Etcd.KeyFile != want.KeyFile ||
		s.Etcd.Username != want.Username || s.Etcd.Password != want.Password {
		t.Fatalf("Etcd = %+v (%v %v), want %+v", s.Etcd, eps, secure, want)
	}
	if got := s.configEtcd(); got.CAFile != want.CAFile || got.Username != "portal" || strings.Join(got.Addrs, ",") != strings.Join(want.Addrs, ",") {
		t.Fatalf("config center's etcd %+v, want the registry's", got)
	}
	s.ConfigAddress = "https://config:2379"
	if got := s.configEtcd(); strings.Join(got.Addrs, ",") != "https://config:2379" || got.Password != "secret" {
		t.Fatalf("config center's etcd on its own address: %+v", got)
	}
	// A settings error fails Build before anything is opened.
	s.Etcd.CertFile, s.Etcd.CAFile = "", ""
	if _, err := Build(context.Background(), s, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil || !strings.Contains(err.Error(), "PORTAL_ETCD_CERT_FILE") {
		t.Fatalf("Build with a key and no certificate: %v", err)
	}
}
