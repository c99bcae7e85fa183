package redisx

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	goredis "github.com/go-redis/redis/v8"

	"github.com/portal-go/portal/internal/tlsx"
)

// Dial are the client options for the Redis a store or cache address names,
// bounded as Options says. The address is a comma-separated list of
// host:port, redis://[user:password@]host:port or rediss://... (TLS) items:
// one is a single server, several a Redis Cluster; ?master=NAME on an item
// makes them Sentinels of the master NAME (the same credentials then log in
// to the Sentinels too). The user and password are an ACL user's (or a
// password alone, for requirepass); items that carry credentials must carry
// the same. caFile (PORTAL_REDIS_CA_FILE), the PEM CA of Redis's
// certificate, turns TLS on too; TLS without it trusts the system's CAs.
func Dial(nodes []string, caFile string) (goredis.UniversalOptions, error) {
	var (
		addrs            []string
		user, pass       string
		master           string
		secure, hasCreds bool
	)
	for _, n := range nodes {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if !strings.Contains(n, "://") {
			addrs = append(addrs, n)
			continue
		}
		u, err := url.Parse(n)
		if err != nil {
			return goredis.UniversalOptions{}, fmt.Errorf("redis address: %w", redactedErr(err))
		}
		switch u.Scheme {
		case "redis":
		case "rediss":
			secure = true
		default:
			return goredis.UniversalOptions{}, fmt.Errorf("redis address %s: scheme %q: want redis:// or rediss://", u.Redacted(), u.Scheme)
		}
		if u.User != nil {
			p, _ := u.User.Password()
			if hasCreds && (u.User.Username() != user || p != pass) {
				return goredis.UniversalOptions{}, errors.New("redis addresses: the items carry different users or passwords")
			}
			user, pass, hasCreds = u.User.Username(), p, true
		}
		if m := u.Query().Get("master"); m != "" {
			master = m
		}
		addrs = append(addrs, u.Host)
	}
	o := Options(Addrs(addrs))
	if pass == "" && user != "" { // redis://password@host: no user name
		user, pass = "", user
	}
	o.Username, o.Password, o.MasterName = user, pass, master
	if master != "" {
		o.SentinelUsername, o.SentinelPassword = user, pass
	}
	if secure || caFile != "" {
		// go-redis dials each node with it; the name checked is the
		// node's host.
		c, err := tlsx.Client(caFile, "PORTAL_REDIS_CA_FILE")
		if err != nil {
			return goredis.UniversalOptions{}, err
		}
		o.TLSConfig = c
	}
	return o, nil
}

// redactedErr is err of url.Parse without the address it quotes, which may
// hold a password.
func redactedErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Describe says how o reaches Redis, for the log: never the password.
func Describe(o goredis.UniversalOptions) string {
	d := strings.Join(o.Addrs, ",")
	switch {
	case o.MasterName != "":
		d += " sentinel master=" + o.MasterName
	case len(o.Addrs) > 1:
		d += " cluster"
	}
	if o.TLSConfig != nil {
		d += " tls"
	} else {
		d += " plaintext"
	}
	if o.Username != "" {
		d += " user=" + o.Username
	} else if o.Password != "" {
		d += " password"
	}
	return d
}

// ErrUnreachable is Check's answer when Redis did not answer: nothing says
// the settings are wrong.
var ErrUnreachable = errors.New("redis: unreachable")

// Check sends PING as o says and returns an error naming the setting at
// fault when Redis's certificate is not signed by the CA, the TLS handshake
// fails, the user or password is refused or missing, or the user may not
// PING; one wrapping ErrUnreachable when Redis does not answer.
func Check(ctx context.Context, o goredis.UniversalOptions) error {
	cli := goredis.NewUniversalClient(&o)
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*DialTimeout)
	defer cancel()
	err := cli.Ping(ctx).Err()
	if err == nil {
		return nil
	}
	msg := err.Error()
	var (
		unknown x509.UnknownAuthorityError
		verify  *tls.CertificateVerificationError
		host    x509.HostnameError
		opErr   *net.OpError
	)
	switch {
	case errors.As(err, &unknown), errors.As(err, &verify) && errors.As(verify.Err, &unknown):
		return fmt.Errorf("redis at %s: its certificate is not signed by the CA of PORTAL_REDIS_CA_FILE (or, without it, by a system CA): %w", Describe(o), err)
	case errors.As(err, &host):
		return fmt.Errorf("redis at %s: its certificate does not name the address dialed: %w", Describe(o), err)
	case strings.HasPrefix(msg, "WRONGPASS"):
		return fmt.Errorf("redis at %s refused the user and password of the address (redis[s]://user:password@host:port): %w", Describe(o), err)
	case strings.HasPrefix(msg, "NOAUTH"):
		return fmt.Errorf("redis at %s requires authentication: give the user and password in the address (redis[s]://user:password@host:port): %w", Describe(o), err)
	case strings.HasPrefix(msg, "NOPERM"):
		return fmt.Errorf("redis at %s: the user may not run what Portal needs (README: the ACL lines): %w", Describe(o), err)
	case errors.As(err, &opErr) && opErr.Op == "dial", errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: %s: %v", ErrUnreachable, Describe(o), err)
	case errors.As(err, &opErr), strings.Contains(msg, "tls:"), strings.Contains(msg, "EOF"), strings.Contains(msg, "connection reset"):
		return fmt.Errorf("redis at %s: the connection failed (TLS on one side only? rediss:// and PORTAL_REDIS_CA_FILE turn it on): %w", Describe(o), err)
	}
	return fmt.Errorf("redis at %s: %w", Describe(o), err)
}

// ACLRules are the rules of the Redis ACL user of Portal's service name
// (web, user, system): keys under its own prefix portal:<name>: only, no
// channels, and the data commands the store, cache, claims and checks send,
// none of the dangerous ones (KEYS, FLUSHALL, CONFIG, ...).
func ACLRules(name string) string {
	return "resetkeys ~portal:" + name + ":* resetchannels -@all +@read +@write +@keyspace +@connection +@transaction +@scripting -@dangerous"
}
