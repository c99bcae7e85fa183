package portal

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"

	"github.com/urfave/cli/v2"

	pauth "github.com/portal-go/portal/internal/auth"
	"github.com/portal-go/portal/internal/web"
)

// Edge is how Portal meets the outside, the same in every mode: which
// proxies may name the client, HSTS, the token that opens the public
// /metrics, and the gateway key that lets services believe the client the
// gateway names.
type Edge struct {
	// TrustedProxies may set the client's address (X-Forwarded-For) and
	// scheme (X-Forwarded-Proto); none by default.
	TrustedProxies []netip.Prefix
	// HSTSMaxAge is Strict-Transport-Security's max-age on https responses
	// (seconds; 0: none).
	HSTSMaxAge int
	// MetricsToken opens GET /metrics on the public port; empty: it is off.
	MetricsToken string
	// GatewayKey signs the end client into RPC (auth.ClientProof); nil: the
	// key kept in the data dir, made when missing.
	GatewayKey []byte
}

// EdgeFlags are Edge's flags, in the embedded mode and in each service of
// the one-service mode (portal up's children read them from PORTAL_*).
var EdgeFlags = []cli.Flag{
	&cli.StringFlag{Name: "trusted_proxies", EnvVars: []string{"PORTAL_TRUSTED_PROXIES"}, Usage: "web: comma-separated CIDRs of reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are believed (default: none)"},
	&cli.IntFlag{Name: "hsts_max_age", Value: web.DefaultHSTSMaxAge, EnvVars: []string{"PORTAL_HSTS_MAX_AGE"}, Usage: "web: Strict-Transport-Security max-age, in seconds, on https responses (0: no header)"},
	&cli.StringFlag{Name: "metrics_token", EnvVars: []string{"PORTAL_METRICS_TOKEN"}, Usage: "web: bearer token that reads GET /metrics on the public port (default: none, and /metrics there is off)"},
	&cli.StringFlag{Name: "gateway_key", EnvVars: []string{"PORTAL_GATEWAY_KEY"}, Usage: "key (base64, 32 bytes or more) with which web signs the client's address and user agent into RPC, the same on web, user and system (default: --gateway_key_file, else <data_dir>/gateway.key, made when missing)"},
	&cli.StringFlag{Name: "gateway_key_file", EnvVars: []string{"PORTAL_GATEWAY_KEY_FILE"}, Usage: "file holding --gateway_key (a mounted secret)"},
}

// EdgeFromCLI reads EdgeFlags, refusing what cannot be used.
func EdgeFromCLI(c *cli.Context) (Edge, error) {
	proxies, err := web.ParseTrustedProxies(c.String("trusted_proxies"))
	if err != nil {
		return Edge{}, fmt.Errorf("--trusted_proxies (PORTAL_TRUSTED_PROXIES): %w", err)
	}
	e := Edge{TrustedProxies: proxies, HSTSMaxAge: c.Int("hsts_max_age"), MetricsToken: c.String("metrics_token")}
	if e.HSTSMaxAge < 0 {
		return Edge{}, fmt.Errorf("--hsts_max_age (PORTAL_HSTS_MAX_AGE) %d: seconds, 0 or more", e.HSTSMaxAge)
	}
	key, file := c.String("gateway_key"), c.String("gateway_key_file")
	switch {
	case key != "" && file != "":
		return Edge{}, fmt.Errorf("--gateway_key (PORTAL_GATEWAY_KEY) and --gateway_key_file (PORTAL_GATEWAY_KEY_FILE): give one")
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return Edge{}, fmt.Errorf("--gateway_key_file (PORTAL_GATEWAY_KEY_FILE): %w", err)
		}
		key = string(b)
	}
	if key != "" {
		if e.GatewayKey, err = pauth.ParseGatewayKey(key); err != nil {
			return Edge{}, fmt.Errorf("--gateway_key (PORTAL_GATEWAY_KEY): %w", err)
		}
	}
	return e, nil
}

// webOptions puts e into the gateway's options.
func (e Edge) webOptions(o web.Options) web.Options {
	o.TrustedProxies, o.HSTSMaxAge, o.MetricsToken = e.TrustedProxies, e.HSTSMaxAge, e.MetricsToken
	return o
}

// clientProof is the gateway key's signer and verifier: from e, else the key
// kept in dataDir (made when missing: one host, or a shared volume).
func (e Edge) clientProof(dataDir string, log *slog.Logger) (*pauth.ClientProof, error) {
	key := e.GatewayKey
	if key == nil {
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return nil, fmt.Errorf("data dir: %w", err)
		}
		var created bool
		var err error
		if key, created, err = pauth.LoadOrCreateGatewayKey(dataDir); err != nil {
			return nil, err
		}
		if created {
			log.Info("generated the gateway key", "dir", dataDir)
		}
	}
	p, err := pauth.NewClientProof(key)
	if err != nil {
		return nil, err
	}
	p.OnBad = func(err error) {
		log.Warn("an RPC named its end client without a valid gateway proof: its caller's own address is used instead; if the caller is a Portal gateway, give web, user and system the same PORTAL_GATEWAY_KEY", "err", err)
	}
	return p, nil
}
