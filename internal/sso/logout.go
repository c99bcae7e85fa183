package sso

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/crypto"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"go-micro.dev/v4/store"

	"github.com/portal-go/portal/internal/audit"
	"github.com/portal-go/portal/internal/kv"
	"github.com/portal-go/portal/internal/outbox"
)

// prefixSession indexes grants by the Portal session they were made in:
// "oidc/sess/<sid>/<grant id>".
const prefixSession = "oidc/sess/"

// prefixLogoutFailed keeps, per client, the back-channel logouts given up:
// "oidc/bcfail/<client id>".
const prefixLogoutFailed = "oidc/bcfail/"

// logoutQueue is the outbox queue of logout tokens to deliver; topicLogout
// its messages' topic.
const (
	logoutQueue = "oidc-logout"
	topicLogout = "oidc.backchannel_logout"
)

// backchannelTimeout bounds one logout token's delivery.
const backchannelTimeout = 5 * time.Second

// logout is a back-channel logout to deliver: the body of a logoutQueue
// message.
type logout struct {
	ClientID string `json:"client_id"`
	UserID   string `json:"user_id"`
	SID      string `json:"sid"`
}

// logoutFailures is what admins see of a client's back-channel logouts
// that were given up.
type logoutFailures struct {
	Count     int       `json:"count"`
	LastError string    `json:"last_error"`
	LastAt    time.Time `json:"last_at"`
}

// SessionEnded ends every grant made in a Portal session that has just
// ended (logout, an ended session, a disabled or deleted user, a password
// change ending the others), and queues a logout token for each client that
// registered a back-channel logout URI, in the same atomic write as the
// grant's end: the queue (Run) delivers it, again with backoff while the
// application refuses, across restarts, until Options.LogoutRetry gives it
// up.
func (p *Provider) SessionEnded(userID, sid string) {
	st := p.storage
	ctx := context.Background()
	keys, err := st.st.List(store.ListPrefix(prefixSession + sid + "/"))
	if err != nil {
		p.log.Warn("grants of an ended session not listed; they end at their next use", "session", sid, "err", err)
	}
	for _, k := range keys {
		gid := strings.TrimPrefix(k, prefixSession+sid+"/")
		var g grant
		if st.get(prefixGrant+gid, &g) == nil {
			ops := []kv.Op{kv.DeleteOp(prefixGrant + gid)}
			if c, err := st.Client(ctx, g.ClientID); err == nil && c.BackchannelLogoutURI != "" {
				body, _ := json.Marshal(logout{ClientID: c.ID, UserID: g.UserID, SID: sid})
				ops = append(ops, p.logouts.Ops(outbox.NewMessage(topicLogout, body))...)
			}
			if _, err := st.kv.Apply(ops...); err != nil {
				p.log.Warn("grant of an ended session not ended; it ends at its next use", "session", sid, "client", g.ClientID, "err", err)
				continue
			}
			p.audit(ctx, audit.KindOIDCRevoke, g.UserID, g.ClientID, "grant ended with its Portal session")
			p.metrics.inc(g.ClientID, "revoked")
		}
		_ = st.st.Delete(k)
	}
	p.logouts.Wake()
}

// Run delivers the queued logout tokens until ctx ends.
func (p *Provider) Run(ctx context.Context) { p.logouts.Run(ctx) }

// deliver POSTs the logout token (OpenID Back-Channel Logout 1.0) of m to
// its client; an error (no answer, not 2xx) has the queue try again. A
// client deleted, or without a back-channel URI, since needs nothing.
func (p *Provider) deliver(ctx context.Context, m outbox.Message) error {
	var l logout
	if err := json.Unmarshal(m.Body, &l); err != nil {
		return nil // not ours to retry: nothing could ever read it
	}
	c, err := p.storage.Client(ctx, l.ClientID)
	if errors.As(err, new(notFound)) {
		return nil
	} else if err != nil {
		return err
	}
	if c.BackchannelLogoutURI == "" {
		return nil
	}
	key, err := p.storage.keys.Current(ctx)
	if err != nil {
		return fmt.Errorf("no signing key: %w", err)
	}
	signer, err := op.SignerFromKey(key)
	if err != nil {
		return err
	}
	claims := oidc.NewLogoutTokenClaims(p.opts.Issuer, l.UserID, oidc.Audience{c.ID}, time.Now().Add(2*time.Minute), randomID(16), l.SID, 0)
	tok, err := crypto.Sign(claims, signer)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.BackchannelLogoutURI, strings.NewReader(url.Values{"logout_token": {tok}}.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rsp, err := p.http.Do(req)
	if err == nil {
		rsp.Body.Close()
		if rsp.StatusCode/100 != 2 {
			err = fmt.Errorf("the application answered %s", rsp.Status)
		}
	}
	p.metrics.backchannel(c.ID, err == nil)
	return err
}

// gaveUp records a logout token the queue gave up, for the client's line
// on the admin page.
func (p *Provider) gaveUp(m outbox.Message, cause error) {
	var l logout
	if json.Unmarshal(m.Body, &l) != nil {
		return
	}
	var f logoutFailures
	_ = p.storage.get(prefixLogoutFailed+l.ClientID, &f)
	f.Count, f.LastError, f.LastAt = f.Count+1, cause.Error(), time.Now().UTC()
	if err := p.storage.put(prefixLogoutFailed+l.ClientID, f, 0); err != nil {
		p.log.Warn("a back-channel logout given up was not recorded for admins", "client", l.ClientID, "err", err)
	}
	p.metrics.inc(l.ClientID, "backchannel_given_up")
	p.audit(context.Background(), audit.KindOIDCRevoke, l.UserID, l.ClientID,
		fmt.Sprintf("back-channel logout given up after %d attempts: %v", m.Attempts, cause))
}

// logoutFailuresOf returns what was given up of client id's back-channel
// logouts.
func (s *Storage) logoutFailuresOf(id string) logoutFailures {
	var f logoutFailures
	_ = s.get(prefixLogoutFailed+id, &f)
	return f
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
