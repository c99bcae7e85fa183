package testenv

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"os"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// EtcdOptions make an etcd secure: TLS, client certificates, users.
type EtcdOptions struct {
	// PKI, when set, issues etcd's server certificate: clients connect
	// over TLS (https://) and verify it against PKI.CAFile.
	PKI *PKI
	// ClientCerts makes etcd require a client certificate signed by PKI.
	ClientCerts bool
	// Auth turns etcd's authentication on: a root user, and Etcd.User
	// with Etcd.Password, whose role may read and write /micro/ only.
	Auth bool
}

// StartSecureEtcd is StartEtcd with o's TLS and authentication. The Etcd's
// Put, Get and Keys act as root.
func StartSecureEtcd(t testing.TB, o EtcdOptions) *Etcd {
	t.Helper()
	return startEtcd(t, o)
}

func (o EtcdOptions) scheme() string {
	if o.PKI != nil {
		return "https"
	}
	return "http"
}

// args are etcd's TLS flags.
func (o EtcdOptions) args(t testing.TB) []string {
	t.Helper()
	if o.PKI == nil {
		return nil
	}
	cert, key := o.PKI.Issue(t, "etcd-server")
	a := []string{"--cert-file", cert, "--key-file", key, "--trusted-ca-file", o.PKI.CAFile}
	if o.ClientCerts {
		a = append(a, "--client-cert-auth")
	}
	return a
}

// clientTLS is the test's own client config: the CA, and a client
// certificate when etcd requires one.
func (o EtcdOptions) clientTLS(t testing.TB) *tls.Config {
	t.Helper()
	if o.PKI == nil {
		return nil
	}
	pem, err := os.ReadFile(o.PKI.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	c := &tls.Config{RootCAs: x509.NewCertPool(), MinVersion: tls.VersionTLS12}
	c.RootCAs.AppendCertsFromPEM(pem)
	if o.ClientCerts {
		certFile, keyFile := o.PKI.Issue(t, "etcd-test-client")
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c
}

// secure fills e's client files and turns authentication on when o asks:
// a root user, and e.User confined to /micro/. Put, Get and Keys then go through a root client
// (etcd's gateway refuses requests with a client certificate).
func (e *Etcd) secure(t testing.TB, o EtcdOptions) {
	t.Helper()
	if o.PKI != nil {
		e.CAFile = o.PKI.CAFile
		if o.ClientCerts {
			e.CertFile, e.KeyFile = o.PKI.Issue(t, "portal-etcd-client")
		}
	}
	if !o.Auth {
		return
	}
	rootPassword := randomHex(t)
	e.User, e.Password = "portal", randomHex(t)
	cfg := clientv3.Config{Endpoints: []string{e.Addr}, TLS: o.clientTLS(t), DialTimeout: readyTimeout, Logger: zap.NewNop()}
	cli, err := clientv3.New(cfg)
	if err != nil {
		t.Fatalf("etcd: client: %v", err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	steps := []func() error{
		func() error { _, err := cli.UserAdd(ctx, "root", rootPassword); return err },
		func() error { _, err := cli.RoleAdd(ctx, "root"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.RoleAdd(ctx, "portal"); return err },
		func() error {
			_, err := cli.RoleGrantPermission(ctx, "portal", "/micro/", string(prefixEnd("/micro/")), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := cli.UserAdd(ctx, e.User, e.Password); return err },
		func() error { _, err := cli.UserGrantRole(ctx, e.User, "portal"); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("etcd: auth setup step %d: %v", i, err)
		}
	}
	cfg.Username, cfg.Password, cfg.DialTimeout = "root", rootPassword, 5*time.Second
	if e.root, err = clientv3.New(cfg); err != nil {
		t.Fatalf("etcd: root client: %v", err)
	}
	t.Cleanup(func() { e.root.Close() })
}

// rootPut, rootGet and rootKeys are Put, Get and Keys as root.
func (e *Etcd) rootPut(t testing.TB, key, value string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := e.root.Put(ctx, key, value); err != nil {
		t.Fatalf("etcd: put %s: %v", key, err)
	}
}

func (e *Etcd) rootGet(t testing.TB, key string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rsp, err := e.root.Get(ctx, key)
	if err != nil {
		t.Fatalf("etcd: get %s: %v", key, err)
	}
	if len(rsp.Kvs) == 0 {
		return ""
	}
	return string(rsp.Kvs[0].Value)
}

func (e *Etcd) rootKeys(t testing.TB, prefix string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rsp, err := e.root.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatalf("etcd: keys %s: %v", prefix, err)
	}
	keys := make([]string, 0, len(rsp.Kvs))
	for _, kv := range rsp.Kvs {
		keys = append(keys, string(kv.Key))
	}
	return keys
}

// randomHex is 16 random bytes in hex: a password.
func randomHex(t testing.TB) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// etcdEnv adds to env what a Portal service needs to reach e: an https://
// address and the CA with TLS on, the client certificate, the credentials.
func etcdEnv(env map[string]string, e *Etcd) {
	if e.CAFile != "" {
		env["MICRO_REGISTRY_ADDRESS"] = "https://" + e.Addr
		env["PORTAL_ETCD_CA_FILE"] = e.CAFile
	}
	if e.CertFile != "" {
		env["PORTAL_ETCD_CERT_FILE"], env["PORTAL_ETCD_KEY_FILE"] = e.CertFile, e.KeyFile
	}
	if e.User != "" {
		env["ETCD_USERNAME"], env["ETCD_PASSWORD"] = e.User, e.Password
	}
}
