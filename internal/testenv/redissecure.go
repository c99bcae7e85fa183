package testenv

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/portal-go/portal/internal/redisx"
)

// RedisOptions make a Redis secure: TLS only, ACL users.
type RedisOptions struct {
	// PKI, when set, issues Redis's server certificate: Redis listens on
	// TLS only (rediss://), with no plaintext port.
	PKI *PKI
	// ACL gives the default user a password and each of Portal's services
	// a user of its own, confined by redisx.ACLRules to its key prefix.
	ACL bool
}

// RedisUser is a Redis ACL user.
type RedisUser struct{ Name, Password string }

// StartSecureRedis is StartRedis with o's TLS and users. Do and the
// readiness probe act as the default user.
func StartSecureRedis(t testing.TB, o RedisOptions) *Redis {
	t.Helper()
	return startRedis(t, o)
}

// portFlag is the flag Redis's port goes to: --tls-port with TLS.
func portFlag(o RedisOptions) string {
	if o.PKI != nil {
		return "--tls-port"
	}
	return "--port"
}

// secure returns Redis's TLS and ACL flags and remembers how to reach it.
func (r *Redis) secure(t testing.TB, o RedisOptions) []string {
	t.Helper()
	var args []string
	if o.PKI != nil {
		cert, key := o.PKI.Issue(t, "redis-server")
		args = append(args, "--port", "0", "--tls-cert-file", cert, "--tls-key-file", key,
			"--tls-ca-cert-file", o.PKI.CAFile, "--tls-auth-clients", "no")
		pem, err := os.ReadFile(o.PKI.CAFile)
		if err != nil {
			t.Fatal(err)
		}
		r.tls = &tls.Config{RootCAs: x509.NewCertPool(), MinVersion: tls.VersionTLS12}
		r.tls.RootCAs.AppendCertsFromPEM(pem)
		r.CAFile = o.PKI.CAFile
	}
	if o.ACL {
		r.admin = randomHex(t)
		// Each word its own argument: redis-server quotes an argument
		// with spaces as one token.
		args = append(args, "--user", "default", "on", ">"+r.admin, "~*", "&*", "+@all")
		r.Users = map[string]RedisUser{}
		for _, s := range []string{"web", "user", "system"} {
			u := RedisUser{Name: "portal-" + s, Password: randomHex(t)}
			r.Users[s] = u
			args = append(args, "--user", u.Name, "on", ">"+u.Password)
			args = append(args, strings.Fields(redisx.ACLRules(s))...)
		}
	}
	return args
}

// URL is the store or cache address of Portal's service name on r:
// rediss:// with TLS, with its ACL user when r has users.
func (r *Redis) URL(service string) string {
	scheme := "redis"
	if r.tls != nil {
		scheme = "rediss"
	}
	u, ok := r.Users[service]
	if !ok {
		return scheme + "://" + r.Addr
	}
	return fmt.Sprintf("%s://%s:%s@%s", scheme, u.Name, u.Password, r.Addr)
}

// Do is RedisDo on r as its default user, over TLS when r has it.
func (r *Redis) Do(timeout time.Duration, args ...string) (string, error) {
	return r.DoAs(RedisUser{Name: "default", Password: r.admin}, timeout, args...)
}

// DoAs is Do as user u (no password: no AUTH).
func (r *Redis) DoAs(u RedisUser, timeout time.Duration, args ...string) (string, error) {
	if r.tls == nil && u.Password == "" {
		return RedisDo(r.Addr, timeout, args...)
	}
	d := &net.Dialer{Timeout: timeout}
	var conn net.Conn
	var err error
	if r.tls != nil {
		conn, err = tls.DialWithDialer(d, "tcp", r.Addr, r.tls)
	} else {
		conn, err = d.Dial("tcp", r.Addr)
	}
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return "", err
	}
	br := bufio.NewReader(conn)
	if u.Password != "" {
		reply, err := redisRoundTrip(conn, br, "AUTH", u.Name, u.Password)
		if err != nil || reply != "+OK" {
			return reply, fmt.Errorf("AUTH %s: %q, %v", u.Name, reply, err)
		}
	}
	return redisRoundTrip(conn, br, args...)
}

// redisEnv adds to env what a Portal service needs of a secure r (nil or
// plain: nothing): the CA; for web, the Redis cache as its own user.
func redisEnv(env map[string]string, service string, r *Redis) {
	if r == nil {
		return
	}
	if r.CAFile != "" {
		env["PORTAL_REDIS_CA_FILE"] = r.CAFile
	}
	if service == "web" && r.Users != nil {
		env["PORTAL_CACHE"], env["PORTAL_CACHE_ADDRESS"] = "redis", r.URL("web")
	}
}
