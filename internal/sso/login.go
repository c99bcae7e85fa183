package sso

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/op"
	"go-micro.dev/v4/store"

	"github.com/portal-go/portal/internal/audit"
)

// prefixConsent keeps what a user let a client have: "oidc/consent/<user>/<client>".
const prefixConsent = "oidc/consent/"

// ConsentPath is the gateway's page that asks a user's consent (outside
// Prefix: the gateway serves it, with its CSRF protection).
const ConsentPath = "/consent"

// login is Portal's step of an authorization request: a browser with a live
// Portal session goes on without being asked again (unless prompt=login or
// max_age ask for a fresh sign-in); any other goes through Portal's login
// page and comes back here. A client that is not first-party needs the
// user's consent once.
func (p *Provider) login(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	a, err := p.storage.authRequest(id)
	if err != nil {
		http.Error(w, "unknown or expired sign-in request", http.StatusBadRequest)
		return
	}
	c, err := p.storage.Client(r.Context(), a.ClientID)
	if err != nil || c.Disabled {
		http.Error(w, "unknown or disabled client", http.StatusBadRequest)
		return
	}
	in, err := p.storage.accounts.Identify(r.Context())
	if err != nil || !p.freshEnough(a, in) {
		here := LoginPath + "?id=" + url.QueryEscape(id)
		http.Redirect(w, r, "/login?next="+url.QueryEscape(here), http.StatusSeeOther)
		return
	}
	if ok, err := p.storage.allowed(r.Context(), c, in.UserID); err != nil || !ok {
		p.audit(r.Context(), audit.KindOIDCGrant, in.UserID, c.ID, "refused: the user does not hold "+c.Permission)
		http.Redirect(w, r, errorRedirect(a, "access_denied", "this application is limited to users holding "+c.Permission), http.StatusSeeOther)
		return
	}
	if !c.FirstParty {
		var given consent
		if p.storage.get(prefixConsent+in.UserID+"/"+c.ID, &given) != nil {
			http.Redirect(w, r, ConsentPath+"?id="+url.QueryEscape(id), http.StatusSeeOther)
			return
		}
	}
	a.UserID, a.SessionID, a.AuthTime, a.AMR, a.Completed = in.UserID, in.SessionID, in.AuthTime, in.AMR, true
	if err := p.storage.put(prefixRequest+a.ID, a, requestTTL); err != nil {
		http.Error(w, "store unavailable", http.StatusServiceUnavailable)
		return
	}
	http.Redirect(w, r, op.AuthCallbackURL(p.op)(r.Context(), id), http.StatusSeeOther)
}

// errorRedirect is the request's redirect URI with an OAuth error.
func errorRedirect(a *authRequest, code, description string) string {
	q := url.Values{"error": {code}, "error_description": {description}}
	if a.State != "" {
		q.Set("state", a.State)
	}
	sep := "?"
	if strings.Contains(a.RedirectURI, "?") {
		sep = "&"
	}
	return a.RedirectURI + sep + q.Encode()
}

// freshEnough reports whether a sign-in satisfies the request's prompt=login
// (signed in after the request was made) and max_age (signed in at most
// max_age seconds before the request was made: a sign-in made for the
// request always does, however long the person took; the op package turns
// prompt=login into max_age=0).
func (p *Provider) freshEnough(a *authRequest, in SignIn) bool {
	if slices.Contains(a.Prompt, "login") && in.AuthTime.Before(a.Created) {
		return false
	}
	if a.MaxAge != nil && in.AuthTime.Before(a.Created.Add(-time.Duration(*a.MaxAge)*time.Second)) {
		return false
	}
	return true
}

// SetConsent records (or, with ok false, withdraws) a user's consent to a
// client. Withdrawing it also ends the user's grants to the client.
func (s *Storage) SetConsent(ctx context.Context, userID, clientID string, ok bool) error {
	key := prefixConsent + userID + "/" + clientID
	if !ok {
		if err := s.st.Delete(key); err != nil {
			return err
		}
		return s.TerminateSession(ctx, userID, clientID)
	}
	return s.put(key, consent{ClientID: clientID, Given: s.now().UTC()}, 0)
}

// consent is a user's recorded consent to a client.
type consent struct {
	ClientID string    `json:"client_id"`
	Given    time.Time `json:"given"`
}

// Consents lists the user's consents.
func (s *Storage) Consents(ctx context.Context, userID string) ([]consent, error) {
	keys, err := s.st.List(store.ListPrefix(prefixConsent + userID + "/"))
	if err != nil {
		return nil, err
	}
	var out []consent
	for _, k := range keys {
		var c consent
		if s.get(k, &c) == nil {
			out = append(out, c)
		}
	}
	return out, nil
}
