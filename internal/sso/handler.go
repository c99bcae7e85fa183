package sso

import (
	"context"
	"errors"

	merrors "go-micro.dev/v4/errors"

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
	return nil
}

// ListClients implements oidcpb.OIDCHandler.
func (h *Handler) ListClients(ctx context.Context, _ *oidcpb.ListClientsRequest, rsp *oidcpb.ListClientsResponse) error {
	cs, err := h.p.storage.Clients(ctx)
	if err != nil {
		return rpcError(err)
	}
	for _, c := range cs {
		rsp.Clients = append(rsp.Clients, clientPB(c))
	}
	return nil
}

// UpdateClient implements oidcpb.OIDCHandler.
func (h *Handler) UpdateClient(ctx context.Context, req *oidcpb.UpdateClientRequest, rsp *oidcpb.UpdateClientResponse) error {
	c, secret, err := h.p.storage.UpdateClient(ctx, req.Id, req.Disabled, req.RotateSecret)
	if err != nil {
		return rpcError(err)
	}
	rsp.Client, rsp.ClientSecret = clientPB(c), secret
	return nil
}

// DeleteClient implements oidcpb.OIDCHandler.
func (h *Handler) DeleteClient(ctx context.Context, req *oidcpb.DeleteClientRequest, _ *oidcpb.DeleteClientResponse) error {
	return rpcError(h.p.storage.DeleteClient(ctx, req.Id))
}
