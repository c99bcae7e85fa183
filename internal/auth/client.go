package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go-micro.dev/v4/client"
	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/server"
	"google.golang.org/grpc/peer"
)

// Client is what only the gateway knows about a request's end client: its
// address (after trusted proxies) and its user agent. It reaches a service
// only through a ClientProof: signed by a caller holding the gateway key, or
// else the caller's own peer address.
type Client struct {
	Addr, UserAgent string
}

// Bounds on what a proof carries: what the stores keep anyway.
const (
	maxClientAddr  = 64
	maxClientAgent = 256
)

// ClientKey is the RPC metadata entry carrying the signed Client:
// "<unix seconds>.<addr>.<user agent>.<mac>", each part base64url.
const ClientKey = "Portal-Client"

// ClientProofWindow is how far a proof's time may be from the verifier's
// clock, either way: a captured entry is worthless after it, and hosts'
// clocks may differ by a little.
const ClientProofWindow = time.Minute

// GatewayKeyFile is the gateway key's file in a data dir.
const GatewayKeyFile = "gateway.key"

// minGatewayKey is the shortest gateway key accepted, in bytes.
const minGatewayKey = 32

type clientCtxKey struct{}

// WithClient names the end client of the calls made with ctx (and, in a
// handler's tests, of the request handled with it). Every service's client
// signs it into each call (ClientProof.Outgoing).
func WithClient(ctx context.Context, c Client) context.Context {
	return context.WithValue(ctx, clientCtxKey{}, Client{Addr: cut(c.Addr, maxClientAddr), UserAgent: cut(c.UserAgent, maxClientAgent)})
}

// ContextWithClient is WithClient with an address and no user agent.
func ContextWithClient(ctx context.Context, addr string) context.Context {
	return WithClient(ctx, Client{Addr: addr})
}

// ClientOf returns the end client of the request handled with ctx: proven by
// a gateway, or the direct caller's peer address (ClientProof.Verify).
func ClientOf(ctx context.Context) (Client, bool) {
	c, ok := ctx.Value(clientCtxKey{}).(Client)
	return c, ok
}

// ClientFromContext returns the end client's address (ClientOf), "" when
// unknown.
func ClientFromContext(ctx context.Context) string {
	c, _ := ClientOf(ctx)
	return c.Addr
}

// ClientProof signs and checks the Client entry with the gateway key, which
// web, user and system share and nobody else holds. A caller without it
// cannot name a client: the verifier records the caller's own address.
type ClientProof struct {
	key []byte
	now func() time.Time
	// warned is set after the first bad signature is logged.
	warned atomic.Bool
	// OnBad is told, once per process, that a proof did not verify (say,
	// services configured with different keys); nil says nothing.
	OnBad func(err error)
}

// NewClientProof makes a ClientProof on key (at least 32 bytes).
func NewClientProof(key []byte) (*ClientProof, error) {
	if len(key) < minGatewayKey {
		return nil, fmt.Errorf("auth: the gateway key has %d bytes, want at least %d", len(key), minGatewayKey)
	}
	return &ClientProof{key: key, now: time.Now}, nil
}

// ErrBadProof means a Client entry did not verify.
var ErrBadProof = errors.New("auth: client proof not valid")

func (p *ClientProof) mac(endpoint, ts, addr, agent string) []byte {
	m := hmac.New(sha256.New, p.key)
	for _, s := range []string{"portal-client-v1", endpoint, ts, addr, agent} {
		m.Write([]byte(strconv.Itoa(len(s))))
		m.Write([]byte{':'})
		m.Write([]byte(s))
	}
	return m.Sum(nil)
}

// entry is the metadata value proving c for a call to endpoint
// ("<service> <Endpoint>").
func (p *ClientProof) entry(endpoint string, c Client) string {
	ts := strconv.FormatInt(p.now().Unix(), 10)
	enc := base64.RawURLEncoding.EncodeToString
	return strings.Join([]string{ts, enc([]byte(c.Addr)), enc([]byte(c.UserAgent)), enc(p.mac(endpoint, ts, c.Addr, c.UserAgent))}, ".")
}

// check parses and verifies a metadata value for a call to endpoint.
func (p *ClientProof) check(endpoint, v string) (Client, error) {
	parts := strings.Split(v, ".")
	if len(parts) != 4 {
		return Client{}, fmt.Errorf("%w: malformed", ErrBadProof)
	}
	dec := base64.RawURLEncoding.DecodeString
	addr, err1 := dec(parts[1])
	agent, err2 := dec(parts[2])
	sig, err3 := dec(parts[3])
	sec, err4 := strconv.ParseInt(parts[0], 10, 64)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return Client{}, fmt.Errorf("%w: malformed", ErrBadProof)
	}
	if !hmac.Equal(sig, p.mac(endpoint, parts[0], string(addr), string(agent))) {
		return Client{}, fmt.Errorf("%w: signature (a caller without the gateway key, or a different key)", ErrBadProof)
	}
	if d := p.now().Sub(time.Unix(sec, 0)); d > ClientProofWindow || d < -ClientProofWindow {
		return Client{}, fmt.Errorf("%w: %s old", ErrBadProof, d.Round(time.Second))
	}
	return Client{Addr: cut(string(addr), maxClientAddr), UserAgent: cut(string(agent), maxClientAgent)}, nil
}

// Outgoing is the context for a call to req: when ctx names a Client
// (WithClient, or a verified one being passed on) it carries it
// signed for req's endpoint; otherwise it carries no Client entry, not even
// one relayed from the caller's own caller. Every service's client applies
// it (platform.Service.UseClientProof).
func (p *ClientProof) Outgoing(ctx context.Context, req client.Request) context.Context {
	ctx = metadata.Delete(ctx, ClientKey)
	if cl, ok := ClientOf(ctx); ok {
		ctx = metadata.Set(ctx, ClientKey, p.entry(req.Service()+" "+req.Endpoint(), cl))
	}
	return ctx
}

// Verify is a server handler wrapper: a call whose Client entry verifies
// reaches the handler with that Client (ClientOf); any other with the
// caller's own peer address (gRPC), or none, and no user agent.
func (p *ClientProof) Verify(next server.HandlerFunc) server.HandlerFunc {
	return func(ctx context.Context, req server.Request, rsp interface{}) error {
		cl := Client{Addr: peerAddr(ctx)}
		if v, ok := metadata.Get(ctx, ClientKey); ok {
			if got, err := p.check(req.Service()+" "+req.Endpoint(), v); err == nil {
				cl = got
			} else if p.OnBad != nil && p.warned.CompareAndSwap(false, true) {
				p.OnBad(err)
			}
		}
		return next(context.WithValue(metadata.Delete(ctx, ClientKey), clientCtxKey{}, cl), req, rsp)
	}
}

// peerAddr is the address of the connection a call came on, without its
// port, as the gRPC server knows it ("" under mucp, whose "Remote" metadata
// a caller can shadow).
func peerAddr(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(p.Addr.String())
	if err != nil {
		return ""
	}
	return host
}

// cut shortens s to at most n bytes, on a rune boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// ParseGatewayKey decodes a gateway key given as base64 (standard or URL,
// padded or not), at least 32 bytes.
func ParseGatewayKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			if len(k) < minGatewayKey {
				return nil, fmt.Errorf("auth: the gateway key has %d bytes, want at least %d", len(k), minGatewayKey)
			}
			return k, nil
		}
	}
	return nil, errors.New("auth: the gateway key is not base64")
}

// LoadOrCreateGatewayKey returns the gateway key kept in dir, making one
// (32 random bytes, mode 0600) when there is none. Processes sharing dir may
// race to make it: the file appears whole (written aside, then linked) and
// every one of them ends up with the same key.
func LoadOrCreateGatewayKey(dir string) (key []byte, created bool, err error) {
	path := filepath.Join(dir, GatewayKeyFile)
	if b, err := os.ReadFile(path); err == nil {
		k, err := ParseGatewayKey(string(b))
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", path, err)
		}
		return k, false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("auth: gateway key: %w", err)
	}
	k := make([]byte, minGatewayKey)
	if _, err := rand.Read(k); err != nil {
		return nil, false, err
	}
	tmp, err := os.CreateTemp(dir, GatewayKeyFile+".*")
	if err != nil {
		return nil, false, fmt.Errorf("auth: gateway key: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.WriteString(base64.StdEncoding.EncodeToString(k) + "\n")
	if err := errors.Join(werr, tmp.Chmod(0o600), tmp.Close()); err != nil {
		return nil, false, fmt.Errorf("auth: gateway key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); errors.Is(err, os.ErrExist) {
		return LoadOrCreateGatewayKey(dir) // another process won
	} else if err != nil {
		return nil, false, fmt.Errorf("auth: gateway key: %w", err)
	}
	return k, true, nil
}
