package sso

import (
	"context"
	"errors"
	"net"
	"net/url"
	"slices"
	"sort"
	"strings"

	"go-micro.dev/v4/store"

	"github.com/portal-go/portal/internal/endpoint"
)

// Client errors, mapped to RPC errors at the handler (rpcError).
var (
	ErrInvalidClient  = errors.New("sso: invalid client")
	ErrClientNotFound = errors.New("sso: client not found")
)

// clientScopes are the scopes a client may be registered for (openid is
// always granted).
var clientScopes = []string{"profile", "email", "offline_access"}

// validate checks a client's registration; insecure allows http:// redirect
// URIs everywhere (a plain-http issuer), otherwise only to loopback.
func (c *Client) validate(insecure bool) error {
	if n := strings.TrimSpace(c.Name); n == "" || len(n) > 100 {
		return errors.Join(ErrInvalidClient, errors.New("name must be 1-100 characters"))
	}
	if len(c.RedirectURIs) == 0 || len(c.RedirectURIs) > 20 {
		return errors.Join(ErrInvalidClient, errors.New("redirect_uris: give 1-20"))
	}
	for _, u := range append(slices.Clone(c.RedirectURIs), c.PostLogoutRedirectURIs...) {
		if err := checkURI(u, insecure); err != nil {
			return err
		}
	}
	if c.BackchannelLogoutURI != "" {
		if err := checkURI(c.BackchannelLogoutURI, insecure); err != nil {
			return err
		}
	}
	if c.Permission != "" && !endpoint.Known(endpoint.Permission(c.Permission)) {
		return errors.Join(ErrInvalidClient, errors.New("permission "+c.Permission+" is not in the catalogue"))
	}
	for _, s := range c.Scopes {
		if !slices.Contains(clientScopes, s) && s != "openid" {
			return errors.Join(ErrInvalidClient, errors.New("scope "+s+" is not one of openid, profile, email, offline_access"))
		}
	}
	return nil
}

// checkURI accepts an absolute https URL without a fragment, or http to a
// loopback host (or anywhere when insecure).
func checkURI(s string, insecure bool) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Fragment != "" || u.User != nil {
		return errors.Join(ErrInvalidClient, errors.New(s+" is not an absolute URL without fragment or user info"))
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); insecure || host == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
	}
	return errors.Join(ErrInvalidClient, errors.New(s+": https is required (http only to loopback)"))
}

// CreateClient registers c and returns its secret (confidential clients;
// empty for public ones), which is kept only hashed.
func (s *Storage) CreateClient(ctx context.Context, c Client) (*Client, string, error) {
	c.Name = strings.TrimSpace(c.Name)
	if err := c.validate(s.opts.Insecure); err != nil {
		return nil, "", err
	}
	c.ID, c.Created, c.Disabled = randomID(16), s.now().UTC(), false
	var secret string
	if c.Confidential {
		secret = randomID(32)
		c.SecretHash = hashSecret(secret)
	}
	return &c, secret, s.put(prefixClient+c.ID, c, 0)
}

// Clients lists the registered clients by name.
func (s *Storage) Clients(ctx context.Context) ([]*Client, error) {
	keys, err := s.st.List(store.ListPrefix(prefixClient))
	if err != nil {
		return nil, err
	}
	var out []*Client
	for _, k := range keys {
		c, err := s.Client(ctx, strings.TrimPrefix(k, prefixClient))
		if err == nil {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// UpdateClient sets a client's disabled flag (when disabled is not nil) and
// rotates its secret (when rotate); it returns the new secret. Disabling a
// client makes every token issued to it inactive at once.
func (s *Storage) UpdateClient(ctx context.Context, id string, disabled *bool, rotate bool) (*Client, string, error) {
	c, err := s.Client(ctx, id)
	if err != nil {
		return nil, "", ErrClientNotFound
	}
	if disabled != nil {
		if *disabled && !c.Disabled {
			c.GrantsAfter = s.now().UTC()
		}
		c.Disabled = *disabled
	}
	var secret string
	if rotate {
		if !c.Confidential {
			return nil, "", errors.Join(ErrInvalidClient, errors.New("a public client has no secret"))
		}
		secret = randomID(32)
		c.SecretHash = hashSecret(secret)
	}
	return c, secret, s.put(prefixClient+c.ID, c, 0)
}

// DeleteClient removes a client: its grants fail from then on.
func (s *Storage) DeleteClient(ctx context.Context, id string) error {
	if _, err := s.Client(ctx, id); err != nil {
		return ErrClientNotFound
	}
	return s.st.Delete(prefixClient + id)
}
