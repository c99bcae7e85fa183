package web

import (
	"net/http"
	"net/url"
	"slices"

	"github.com/gin-gonic/gin"

	oidcpb "github.com/portal-go/portal/proto/oidc"
	userpb "github.com/portal-go/portal/proto/user"
)

// confirmField is the field a confirm page adds: a destructive or
// privilege-changing form acts only when it carries confirmed=yes.
const confirmField = "confirmed"

// confirmation is what a confirm page shows: what will happen, the button
// that does it (a form posting the same fields again, confirmed), and the
// way back. It works without JavaScript.
type confirmation struct {
	Title, What, Button string
	Action, Cancel      string
	Fields              []formField
	// Lines are shown before the button (a config diff).
	Lines []string
}

type formField struct{ Name, Value string }

// confirmFirst lets a confirmed form through; any other is answered with a
// page that names what the form would do and asks.
func (g *Gateway) confirmFirst(c *gin.Context) {
	if c.PostForm(confirmField) == "yes" {
		c.Next()
		return
	}
	cf, ok := g.describe(c)
	if !ok {
		return // describe answered (an error)
	}
	g.askConfirm(c, cf)
}

// askConfirm renders the confirm page for cf, the posted fields carried over
// (unless cf names the fields itself).
func (g *Gateway) askConfirm(c *gin.Context, cf confirmation) {
	cf.Action = c.Request.URL.Path
	if cf.Fields == nil {
		for name, vs := range c.Request.PostForm {
			if name == csrfField || name == confirmField || len(vs) == 0 {
				continue
			}
			cf.Fields = append(cf.Fields, formField{name, vs[0]})
		}
	}
	g.page(c, http.StatusOK, "confirm.html", gin.H{"Confirm": cf})
	c.Abort()
}

// describe says what the form at the request's route would do.
func (g *Gateway) describe(c *gin.Context) (confirmation, bool) {
	switch c.FullPath() {
	case "/admin/users/:id/:action":
		id := c.Param("id")
		rsp, err := g.Users.GetUser(rpcContext(c), &userpb.GetUserRequest{Id: id})
		if err != nil {
			g.abortRPC(c, err)
			return confirmation{}, false
		}
		name, back := rsp.User.Username, "/admin/users/"+url.PathEscape(id)
		switch action := c.Param("action"); action {
		case "delete":
			return confirmation{tr(c, "confirm.delete.title"), tr(c, "confirm.delete.what", "Name", name), tr(c, "confirm.delete.button"), "", back, nil, nil}, true
		case "disable":
			return confirmation{tr(c, "confirm.disable.title"), tr(c, "confirm.disable.what", "Name", name), tr(c, "confirm.disable.button"), "", back, nil, nil}, true
		case "enable":
			return confirmation{tr(c, "confirm.enable.title"), tr(c, "confirm.enable.what", "Name", name), tr(c, "confirm.enable.button"), "", back, nil, nil}, true
		case "roles":
			roles := c.PostFormArray("role")
			var lines []string
			for _, r := range roles {
				if !slices.Contains(rsp.User.Roles, r) {
					lines = append(lines, "+ "+r)
				}
			}
			for _, r := range rsp.User.Roles {
				if !slices.Contains(roles, r) {
					lines = append(lines, "− "+r)
				}
			}
			return confirmation{tr(c, "confirm.roles.title"), tr(c, "confirm.roles.what", "Name", name), tr(c, "confirm.roles.button"), "", back, nil, lines}, true
		case "revoke-key":
			return confirmation{tr(c, "confirm.revoke_key.title"), tr(c, "confirm.revoke_key.what", "Name", name), tr(c, "confirm.revoke_key.button"), "", back, nil, nil}, true
		}
		g.fail(c, http.StatusNotFound, codeNoSuchAction, "no such action")
		return confirmation{}, false
	case "/admin/sessions/:id/end":
		back := "/admin/users"
		if u := c.PostForm("user"); u != "" {
			back += "/" + url.PathEscape(u)
		}
		return confirmation{tr(c, "confirm.end_session.title"), tr(c, "confirm.end_session.what"), tr(c, "confirm.end_session.button"), "", back, nil, nil}, true
	case "/account/sessions/:id/end":
		if c.Param("id") == "others" {
			return confirmation{tr(c, "confirm.end_others.title"), tr(c, "confirm.end_others.what"), tr(c, "confirm.end_others.button"), "", "/account", nil, nil}, true
		}
		if callerOf(c).Info.SessionId == c.Param("id") {
			return confirmation{tr(c, "confirm.end_mine.title"), tr(c, "confirm.end_mine.what"), tr(c, "confirm.end_mine.button"), "", "/account", nil, nil}, true
		}
		return confirmation{tr(c, "confirm.end_session.title"), tr(c, "confirm.end_session.what"), tr(c, "confirm.end_session.button"), "", "/account", nil, nil}, true
	case "/account/tokens/:id/revoke":
		return confirmation{tr(c, "confirm.revoke_mine.title"), tr(c, "confirm.revoke_mine.what", "Name", c.PostForm("name")), tr(c, "confirm.revoke_key.button"), "", "/account", nil, nil}, true
	case "/admin/roles/:name":
		if c.PostForm("action") == "delete" {
			return confirmation{tr(c, "confirm.role_delete.title"), tr(c, "confirm.role_delete.what", "Name", c.Param("name")), tr(c, "confirm.role_delete.button"), "", "/admin/roles", nil, nil}, true
		}
		return confirmation{tr(c, "confirm.role_save.title"), tr(c, "confirm.role_save.what", "Name", c.Param("name")), tr(c, "confirm.role_save.button"), "", "/admin/roles", nil, c.PostFormArray("permission")}, true
	case "/admin/services/:name/restart":
		return confirmation{tr(c, "confirm.restart.title"), tr(c, "confirm.restart.what", "Name", c.Param("name")), tr(c, "confirm.restart.button"), "", "/admin/services", nil, nil}, true
	case "/account/apps/:id/revoke":
		rsp, err := g.OIDC.ListConsents(rpcContext(c), &oidcpb.ListConsentsRequest{})
		if err != nil {
			g.abortRPC(c, err)
			return confirmation{}, false
		}
		name := c.Param("id")
		for _, a := range rsp.Consents {
			if a.ClientId == name {
				name = a.ClientName
			}
		}
		return confirmation{tr(c, "confirm.app_revoke.title"), tr(c, "confirm.app_revoke.what", "Name", name), tr(c, "confirm.app_revoke.button"), "", "/account", nil, nil}, true
	case "/admin/oidc/:id/:action":
		action := c.Param("action")
		if !slices.Contains([]string{"disable", "enable", "rotate", "delete"}, action) {
			g.fail(c, http.StatusNotFound, codeNoSuchAction, "no such action")
			return confirmation{}, false
		}
		rsp, err := g.OIDC.ListClients(rpcContext(c), &oidcpb.ListClientsRequest{})
		if err != nil {
			g.abortRPC(c, err)
			return confirmation{}, false
		}
		name := c.Param("id")
		for _, cl := range rsp.Clients {
			if cl.Id == name {
				name = cl.Name
			}
		}
		key := "confirm.client_" + action
		return confirmation{tr(c, key+".title"), tr(c, key+".what", "Name", name), tr(c, key+".button"), "", "/admin/oidc", nil, nil}, true
	case "/admin/lockouts/lift":
		return confirmation{tr(c, "confirm.lift.title"), tr(c, "confirm.lift.what", "Key", c.PostForm("key")), tr(c, "confirm.lift.button"), "", "/admin/lockouts", nil, nil}, true
	}
	// A route given confirmFirst without a description is a bug: refuse
	// rather than act unasked.
	g.fail(c, http.StatusInternalServerError, codeInternal, "no confirmation for "+c.FullPath())
	return confirmation{}, false
}
