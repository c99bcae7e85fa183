package sso

import (
	"context"
	"errors"
	"net/url"
	"strings"

	"go-micro.dev/v4/auth"
	merrors "go-micro.dev/v4/errors"

	"github.com/portal-go/portal/internal/audit"

	oidcpb "github.com/portal-go/portal/proto/oidc"
)

// rpcError maps the package's errors to RPC errors, once, at the edge.
func rpcError(err error) error {
	var nf interface{ IsNotFound() }
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrClientNotFound), errors.As(err, &nf):
		return merrors.NotFound("oidc.client_not_found", "no such client")
	case errors.Is(err, ErrInvalidClient):
		return merrors.BadRequest("oidc.invalid_client", "%s", err.Error())
	default:
		return merrors.InternalServerError("oidc.store", "the store failed")
	}
}

func clientPB(c *Client) *oidcpb.Client {
	return &oidcpb.Client{
		Id: c.ID, Name: c.Name, RedirectUris: c.RedirectURIs, PostLogoutRedirectUris: c.PostLogoutRedirectURIs,
		BackchannelLogoutUri: c.BackchannelLogoutURI, Confidential: c.Confidential, FirstParty: c.FirstParty,
		Scopes: c.Scopes, Permission: c.Permission, Disabled: c.Disabled, Created: c.Created.Unix(),
	}
}

// withFailures adds to pc the back-channel logouts given up of its client.
func (h *Handler) withFailures(pc *oidcpb.Client) *oidcpb.Client {
	if f := h.p.storage.logoutFailuresOf(pc.Id); f.Count > 0 {
		pc.BackchannelFailures, pc.BackchannelLastError, pc.BackchannelFailedAt = int32(f.Count), f.LastError, f.LastAt.Unix()
	}
	return pc
}

// CreateClient implements oidcpb.OIDCHandler.
func (h *Handler) CreateClient(ctx context.Context, req *oidcpb.CreateClientRequest, rsp *oidcpb.CreateClientResponse) error {
	c, secret, err := h.p.storage.CreateClient(ctx, Client{
		Name: req.Name, RedirectURIs: req.RedirectUris, PostLogoutRedirectURIs: req.PostLogoutRedirectUris,
		BackchannelLogoutURI: req.BackchannelLogoutUri, Confidential: req.Confidential,
		FirstParty: req.FirstParty, Scopes: req.Scopes, Permission: req.Permission,
	})
	if err != nil {
		return rpcError(err)
	}
	rsp.Client, rsp.ClientSecret = clientPB(c), secret
	h.p.audit(ctx, audit.KindOIDCClient, adminID(ctx), c.ID, "registered; redirect URIs: "+strings.Join(c.RedirectURIs, " "))
	return nil
}

// adminID is the caller's account id, for the audit log.
func adminID(ctx context.Context) string {
	acc, _ := auth.AccountFromContext(ctx)
	if acc == nil {
		return ""
	}
	return acc.ID
}

// ListClients implements oidcpb.OIDCHandler.
func (h *Handler) ListClients(ctx context.Context, _ *oidcpb.ListClientsRequest, rsp *oidcpb.ListClientsResponse) error {
	cs, err := h.p.storage.Clients(ctx)
	if err != nil {
		return rpcError(err)
	}
	for _, c := range cs {
		rsp.Clients = append(rsp.Clients, h.withFailures(clientPB(c)))
	}
	return nil
}

// UpdateClient implements oidcpb.OIDCHandler.
func (h *Handler) UpdateClient(ctx context.Context, req *oidcpb.UpdateClientRequest, rsp *oidcpb.UpdateClientResponse) error {
	c, secret, err := h.p.storage.UpdateClient(ctx, req.Id, req.Disabled, req.RotateSecret)
	if err != nil {
		return rpcError(err)
	}
	var did []string
	if req.Disabled != nil {
		did = append(did, map[bool]string{true: "disabled: every token issued to it ended", false: "enabled"}[*req.Disabled])
	}
	if req.RotateSecret {
		did = append(did, "secret rotated")
	}
	h.p.audit(ctx, audit.KindOIDCClient, adminID(ctx), c.ID, strings.Join(did, "; "))
	rsp.Client, rsp.ClientSecret = clientPB(c), secret
	return nil
}

// DeleteClient implements oidcpb.OIDCHandler.
func (h *Handler) DeleteClient(ctx context.Context, req *oidcpb.DeleteClientRequest, _ *oidcpb.DeleteClientResponse) error {
	h.p.audit(ctx, audit.KindOIDCClient, adminID(ctx), req.Id, "deleted")
	return rpcError(h.p.storage.DeleteClient(ctx, req.Id))
}

// caller is the signed-in user of an RPC (the auth wrapper put it there).
func caller(ctx context.Context) (string, error) {
	acc, ok := auth.AccountFromContext(ctx)
	if !ok {
		return "", merrors.Unauthorized("auth.unauthenticated", "sign in first")
	}
	return acc.ID, nil
}

// pendingRequest returns an authorization request waiting for a decision.
func (h *Handler) pendingRequest(ctx context.Context, id string) (*authRequest, *Client, error) {
	a, err := h.p.storage.authRequest(id)
	if err != nil || a.Completed {
		return nil, nil, merrors.NotFound("oidc.request_not_found", "the sign-in request is unknown or has expired")
	}
	c, err := h.p.storage.Client(ctx, a.ClientID)
	if err != nil || c.Disabled {
		return nil, nil, merrors.NotFound("oidc.client_not_found", "no such client")
	}
	return a, c, nil
}

// ConsentInfo implements oidcpb.OIDCHandler.
func (h *Handler) ConsentInfo(ctx context.Context, req *oidcpb.ConsentInfoRequest, rsp *oidcpb.ConsentInfoResponse) error {
	if _, err := caller(ctx); err != nil {
		return err
	}
	a, c, err := h.pendingRequest(ctx, req.Id)
	if err != nil {
		return err
	}
	rsp.ClientId, rsp.ClientName, rsp.Scopes = c.ID, c.Name, a.Scopes
	return nil
}

// Consent implements oidcpb.OIDCHandler: allowed, the consent is kept and
// the browser goes back to the login step, which completes the request;
// denied, the application is told access_denied at its redirect URI.
func (h *Handler) Consent(ctx context.Context, req *oidcpb.ConsentRequest, rsp *oidcpb.ConsentResponse) error {
	uid, err := caller(ctx)
	if err != nil {
		return err
	}
	a, c, err := h.pendingRequest(ctx, req.Id)
	if err != nil {
		return err
	}
	if !req.Allow {
		h.p.audit(ctx, audit.KindOIDCConsent, uid, c.ID, "consent refused")
		rsp.Redirect = errorRedirect(a, "access_denied", "the user refused")
		return nil
	}
	if err := h.p.storage.SetConsent(ctx, uid, c.ID, true); err != nil {
		return rpcError(err)
	}
	h.p.audit(ctx, audit.KindOIDCConsent, uid, c.ID, "consent given: "+strings.Join(a.Scopes, " "))
	rsp.Redirect = LoginPath + "?id=" + url.QueryEscape(a.ID)
	return nil
}

// ListConsents implements oidcpb.OIDCHandler.
func (h *Handler) ListConsents(ctx context.Context, _ *oidcpb.ListConsentsRequest, rsp *oidcpb.ListConsentsResponse) error {
	uid, err := caller(ctx)
	if err != nil {
		return err
	}
	cs, err := h.p.storage.Consents(ctx, uid)
	if err != nil {
		return rpcError(err)
	}
	for _, c := range cs {
		name := c.ClientID
		if cl, err := h.p.storage.Client(ctx, c.ClientID); err == nil {
			name = cl.Name
		}
		rsp.Consents = append(rsp.Consents, &oidcpb.Consent{ClientId: c.ClientID, ClientName: name, Given: c.Given.Unix()})
	}
	return nil
}

// RevokeConsent implements oidcpb.OIDCHandler.
func (h *Handler) RevokeConsent(ctx context.Context, req *oidcpb.RevokeConsentRequest, _ *oidcpb.RevokeConsentResponse) error {
	uid, err := caller(ctx)
	if err != nil {
		return err
	}
	if err := h.p.storage.SetConsent(ctx, uid, req.ClientId, false); err != nil {
		return rpcError(err)
	}
	h.p.audit(ctx, audit.KindOIDCConsent, uid, req.ClientId, "consent withdrawn: the application's grants ended")
	return nil
}
