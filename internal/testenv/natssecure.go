package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nkeys"
)

// NATSOptions make a NATS server secure: TLS, users.
type NATSOptions struct {
	// PKI, when set, issues the server's certificate: clients must use
	// TLS (tls://) and verify it against PKI.CAFile.
	PKI *PKI
	// Auth requires clients to log in: NATS.User with NATS.Password, or
	// the NKey whose seed is in NATS.NKeyFile.
	Auth bool
}

// StartSecureNATS is StartNATS with o's TLS and users.
func StartSecureNATS(t testing.TB, o NATSOptions) *NATS {
	t.Helper()
	return startNATS(t, o)
}

// secure writes a config file with o's TLS and users, and returns the
// flag that reads it.
func (n *NATS) secure(t testing.TB, o NATSOptions, dir string) []string {
	t.Helper()
	if o.PKI == nil && !o.Auth {
		return nil
	}
	var conf strings.Builder
	if o.PKI != nil {
		cert, key := o.PKI.Issue(t, "nats-server")
		fmt.Fprintf(&conf, "tls {\n  cert_file: %q\n  key_file: %q\n}\n", cert, key)
		n.CAFile = o.PKI.CAFile
	}
	if o.Auth {
		n.User, n.Password = "portal", randomHex(t)
		kp, err := nkeys.CreateUser()
		if err != nil {
			t.Fatal(err)
		}
		seed, _ := kp.Seed()
		pub, _ := kp.PublicKey()
		n.NKeyFile = filepath.Join(dir, "portal.nk")
		if err := os.WriteFile(n.NKeyFile, seed, 0o600); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&conf, "authorization {\n  users = [\n    {user: %q, password: %q}\n    {nkey: %q}\n  ]\n}\n", n.User, n.Password, pub)
	}
	file := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(file, []byte(conf.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"-c", file}
}

// ClientURL is the address Portal's services are given for n: tls:// with
// TLS, with the user and password when n has them.
func (n *NATS) ClientURL() string {
	scheme := "nats"
	if n.CAFile != "" {
		scheme = "tls"
	}
	if n.User == "" {
		return scheme + "://" + n.Addr
	}
	return fmt.Sprintf("%s://%s:%s@%s", scheme, n.User, n.Password, n.Addr)
}

// natsEnv adds to env what a Portal service needs of a secure n.
func natsEnv(env map[string]string, n *NATS) {
	env["MICRO_BROKER_ADDRESS"] = n.ClientURL()
	if n.CAFile != "" {
		env["PORTAL_NATS_CA_FILE"] = n.CAFile
	}
}
