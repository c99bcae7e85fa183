package sso

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/crypto"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"go-micro.dev/v4/store"

	"github.com/portal-go/portal/internal/audit"
)

// prefixSession indexes grants by the Portal session they were made in:
// "oidc/sess/<sid>/<grant id>".
const prefixSession = "oidc/sess/"

// backchannelTimeout bounds one logout token's delivery.
const backchannelTimeout = 5 * time.Second

// SessionEnded ends every grant made in a Portal session that has just
// ended (logout, an ended session, a disabled or deleted user, a password
// change ending the others), and sends a logout token to each client that
// registered a back-channel logout URI. Delivery runs in the background; done
// (may be nil) is called when every delivery has finished.
func (p *Provider) SessionEnded(userID, sid string, done func()) {
	st := p.storage
	keys, err := st.st.List(store.ListPrefix(prefixSession + sid + "/"))
	if err != nil {
		p.log.Warn("grants of an ended session not listed; they end at their next use", "session", sid, "err", err)
	}
	var sends []func()
	for _, k := range keys {
		gid := strings.TrimPrefix(k, prefixSession+sid+"/")
		var g grant
		if st.get(prefixGrant+gid, &g) == nil {
			st.endGrant(gid)
			p.audit(context.Background(), audit.KindOIDCRevoke, g.UserID, g.ClientID, "grant ended with its Portal session")
			p.metrics.inc(g.ClientID, "revoked")
			if c, err := st.Client(context.Background(), g.ClientID); err == nil && c.BackchannelLogoutURI != "" {
				sends = append(sends, func() { p.backchannel(c, g.UserID, sid) })
			}
		}
		_ = st.st.Delete(k)
	}
	go func() {
		for _, send := range sends {
			send()
		}
		if done != nil {
			done()
		}
	}()
}

// backchannel POSTs a logout token (OpenID Back-Channel Logout 1.0) to c.
func (p *Provider) backchannel(c *Client, userID, sid string) {
	key, err := p.storage.keys.Current(context.Background())
	if err != nil {
		p.log.Warn("back-channel logout not sent: no signing key", "client", c.ID, "err", err)
		return
	}
	signer, err := op.SignerFromKey(key)
	if err != nil {
		return
	}
	claims := oidc.NewLogoutTokenClaims(p.opts.Issuer, userID, oidc.Audience{c.ID}, time.Now().Add(2*time.Minute), randomID(16), sid, 0)
	tok, err := crypto.Sign(claims, signer)
	if err != nil {
		p.log.Warn("back-channel logout not signed", "client", c.ID, "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), backchannelTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.BackchannelLogoutURI, strings.NewReader(url.Values{"logout_token": {tok}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rsp, err := p.http.Do(req)
	if err != nil {
		p.log.Warn("back-channel logout not delivered", "client", c.ID, "err", err)
		return
	}
	rsp.Body.Close()
	if rsp.StatusCode/100 != 2 {
		p.log.Warn("back-channel logout refused", "client", c.ID, "status", rsp.StatusCode)
	}
	p.metrics.backchannel(c.ID, rsp.StatusCode/100 == 2)
}

// TerminateSessionFromRequest implements op.CanTerminateSessionFromRequest
// (RP-initiated logout): with an id_token_hint, the Portal session it names
// (its sid) ends, and with it every grant made in it, for every client. A
// request without one ends nothing (a cross-site link must not sign a user
// out) and only redirects.
func (s *Storage) TerminateSessionFromRequest(ctx context.Context, r *op.EndSessionRequest) (string, error) {
	if r.IDTokenHintClaims == nil {
		return r.RedirectURI, nil
	}
	sid, _ := r.IDTokenHintClaims.Claims["sid"].(string)
	if sid == "" {
		return r.RedirectURI, nil
	}
	if err := s.accounts.EndSession(ctx, r.UserID, sid); err != nil && err != ErrEnded {
		return "", err
	}
	return r.RedirectURI, nil
}

var _ op.CanTerminateSessionFromRequest = (*Storage)(nil)
