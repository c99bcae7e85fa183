package web

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portal-go/portal/internal/audit"
	"github.com/portal-go/portal/internal/endpoint"
	systempb "github.com/portal-go/portal/proto/system"
	userpb "github.com/portal-go/portal/proto/user"
)

// The admin pages under /admin. Each is offered to a caller holding the
// permission it needs (the navigation shows only those), and each action
// only to one holding the permission for it; but the services decide: a
// forged form is refused by the service that serves its RPC. The JSON API
// under /api/v1/admin is the services' tables' (routes.go).

// pageSize is how many rows an admin page shows.
const pageSize = 20

// adminPages are the admin pages in the navigation's order, each with the
// permission that opens it.
var adminPages = []struct {
	Path, Title, ID string
	Needs           endpoint.Permission
}{
	{"/admin", "Overview", "tab-overview", endpoint.OverviewRead},
	{"/admin/users", "Users", "tab-users", endpoint.UsersRead},
	{"/admin/roles", "Roles", "tab-roles", endpoint.RolesRead},
	{"/admin/config", "Config", "tab-config", endpoint.ConfigRead},
	{"/admin/services", "Services", "tab-services", endpoint.ServicesRead},
	{"/admin/audit", "Audit log", "tab-audit", endpoint.AuditRead},
	{"/admin/lockouts", "Lockouts", "tab-lockouts", endpoint.UsersRead},
	{"/admin/mail", "Mail", "tab-mail", endpoint.UsersRead},
	{"/admin/oidc", "Applications", "tab-oidc", endpoint.ClientsRead},
}

// needs refuses a caller whose permissions (as the user service last
// reported them) lack p: an early, friendly refusal; the service checks
// again.
func (g *Gateway) needs(p endpoint.Permission) gin.HandlerFunc {
	return func(c *gin.Context) {
		if cl := callerOf(c); cl == nil || !slices.Contains(cl.Info.Permissions, string(p)) {
			g.fail(c, http.StatusForbidden, "auth.forbidden", "this needs the permission "+string(p))
			return
		}
		c.Next()
	}
}

// adminHome is /admin: the overview for a caller who may see it, else the
// first admin page they may see.
func (g *Gateway) adminHome(c *gin.Context) {
	perms := callerOf(c).Info.Permissions
	if slices.Contains(perms, string(endpoint.OverviewRead)) {
		g.overviewPage(c)
		return
	}
	for _, p := range adminPages {
		if slices.Contains(perms, string(p.Needs)) {
			c.Redirect(http.StatusSeeOther, p.Path)
			return
		}
	}
	g.fail(c, http.StatusForbidden, "auth.forbidden", "no admin page is open to this account")
}

// intQuery reads a non-negative integer query parameter, 0 when absent or bad.
func intQuery(c *gin.Context, name string) int32 {
	n, err := strconv.ParseInt(c.Query(name), 10, 32)
	if err != nil || n < 0 {
		return 0
	}
	return int32(n)
}

// apiEndSession is DELETE /api/v1/admin/sessions/{id}: the gateway's own
// route (not the table's), as it drops the session on this gateway at once.
func (g *Gateway) apiEndSession(c *gin.Context) {
	if !g.endSession(c, c.Param("id")) {
		return
	}
	c.Status(http.StatusNoContent)
}

// notices are the messages an action's redirect may ask a page to show.
var notices = map[string]string{
	"session_ended": "Session ended.", "roles": "Roles changed.", "disabled": "Account disabled; its sessions ended.",
	"enabled": "Account enabled.", "deleted": "Account deleted.", "config": "Config saved and applied.",
	"restarted": "Restart requested.", "token_revoked": "API key revoked.", "role_saved": "Role saved.",
	"role_deleted": "Role deleted.", "lifted": "Lockout lifted.",
	"app_revoked":    "Application revoked; its sign-ins ended.",
	"client_disable": "Application disabled; every token issued to it ended.", "client_enable": "Application enabled.",
	"client_delete": "Application deleted.",
}

// back redirects (303) to path with a notice, after a form's action.
func back(c *gin.Context, path, notice string) {
	u := url.URL{Path: path, RawQuery: url.Values{"done": {notice}}.Encode()}
	c.Redirect(http.StatusSeeOther, u.String())
}

func (g *Gateway) overviewPage(c *gin.Context) {
	rsp, err := g.System.Overview(rpcContext(c), &systempb.OverviewRequest{})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	g.page(c, http.StatusOK, "admin_overview.html", gin.H{"O": rsp, "Chart": newChart(rsp.Hours)})
}

func (g *Gateway) usersPage(c *gin.Context) {
	q, offset := c.Query("q"), intQuery(c, "offset")
	rsp, err := g.Users.ListUsers(rpcContext(c), &userpb.ListUsersRequest{Query: q, Offset: offset, Limit: pageSize})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	g.page(c, http.StatusOK, "admin_users.html", gin.H{
		"Users": rsp.Users, "Total": rsp.Total, "Query": q,
		"Pager": newPager("/admin/users", url.Values{"q": {q}}, offset, rsp.Total), "Notice": notices[c.Query("done")],
	})
}

func (g *Gateway) userPage(c *gin.Context) {
	ctx := rpcContext(c)
	rsp, err := g.Users.GetUser(ctx, &userpb.GetUserRequest{Id: c.Param("id")})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	keys, err := g.Users.ListTokens(ctx, &userpb.ListTokensRequest{UserId: rsp.User.Id})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	data := gin.H{"User": rsp.User, "Sessions": rsp.Sessions, "Tokens": keys.Tokens, "Notice": notices[c.Query("done")]}
	// The roles to choose from, when the caller may both see roles and
	// change accounts.
	if perms := callerOf(c).Info.Permissions; slices.Contains(perms, string(endpoint.RolesRead)) && slices.Contains(perms, string(endpoint.UsersWrite)) {
		roles, err := g.Users.ListRoles(ctx, &userpb.ListRolesRequest{})
		if err != nil {
			g.abortRPC(c, err)
			return
		}
		var choices []roleChoice
		for _, r := range roles.Roles {
			choices = append(choices, roleChoice{Name: r.Name, Held: slices.Contains(rsp.User.Roles, r.Name)})
		}
		data["Roles"] = choices
	}
	g.page(c, http.StatusOK, "admin_user.html", data)
}

// roleChoice is a checkbox of the user page's roles form.
type roleChoice struct {
	Name string
	Held bool
}

// userActionForm applies one action of the users pages: roles (the role
// boxes ticked), disable, enable, delete.
func (g *Gateway) userActionForm(c *gin.Context) {
	id, action := c.Param("id"), c.Param("action")
	ctx := rpcContext(c)
	var err error
	switch action {
	case "roles":
		_, err = g.Users.UpdateUser(ctx, &userpb.UpdateUserRequest{Id: id, Roles: &userpb.Roles{Roles: c.PostFormArray("role")}})
	case "disable", "enable":
		disabled := action == "disable"
		_, err = g.Users.UpdateUser(ctx, &userpb.UpdateUserRequest{Id: id, Disabled: &disabled})
	case "delete":
		_, err = g.Users.DeleteUser(ctx, &userpb.DeleteUserRequest{Id: id})
	case "revoke-key":
		_, err = g.Users.RevokeToken(ctx, &userpb.RevokeTokenRequest{Id: c.PostForm("key")})
	default:
		g.fail(c, http.StatusNotFound, "not_found", "no such action")
		return
	}
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	if action == "delete" {
		back(c, "/admin/users", "deleted")
		return
	}
	back(c, "/admin/users/"+id, actionNotices[action])
}

// actionNotices name the notice each action on a user's page comes back with.
var actionNotices = map[string]string{"roles": "roles", "disable": "disabled", "enable": "enabled", "revoke-key": "token_revoked"}

func (g *Gateway) endSessionForm(c *gin.Context) {
	if !g.endSession(c, c.Param("id")) {
		return
	}
	next := "/admin/users"
	if u := c.PostForm("user"); u != "" {
		next += "/" + url.PathEscape(u)
	}
	back(c, next, "session_ended")
}

func (g *Gateway) lockoutsPage(c *gin.Context) {
	rsp, err := g.Users.ListLockouts(rpcContext(c), &userpb.ListLockoutsRequest{})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	g.page(c, http.StatusOK, "admin_lockouts.html", gin.H{"Lockouts": rsp.Lockouts, "Notice": notices[c.Query("done")]})
}

func (g *Gateway) liftLockoutForm(c *gin.Context) {
	req := &userpb.LiftLockoutRequest{Kind: c.PostForm("kind"), Key: c.PostForm("key")}
	if _, err := g.Users.LiftLockout(rpcContext(c), req); err != nil {
		g.abortRPC(c, err)
		return
	}
	back(c, "/admin/lockouts", "lifted")
}

func (g *Gateway) configPage(c *gin.Context) {
	rsp, err := g.System.GetConfig(rpcContext(c), &systempb.GetConfigRequest{})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	g.page(c, http.StatusOK, "admin_config.html", gin.H{"Config": rsp, "Doc": rsp.Document, "Notice": notices[c.Query("done")]})
}

func (g *Gateway) configForm(c *gin.Context) {
	doc := c.PostForm("yaml")
	if _, err := g.System.UpdateConfig(rpcContext(c), &systempb.UpdateConfigRequest{Document: doc}); err != nil {
		status, _, msg := rpcStatus(err)
		if status >= 500 {
			g.abortRPC(c, err)
			return
		}
		cur, gerr := g.System.GetConfig(rpcContext(c), &systempb.GetConfigRequest{})
		if gerr != nil {
			g.abortRPC(c, gerr)
			return
		}
		// The rejected text stays in the form, to be mended.
		g.page(c, status, "admin_config.html", gin.H{"Config": cur, "Doc": doc, "Error": msg})
		return
	}
	back(c, "/admin/config", "config")
}

func (g *Gateway) servicesPage(c *gin.Context) {
	rsp, err := g.System.ListServices(rpcContext(c), &systempb.ListServicesRequest{})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	// The page reloads itself, so it follows instances as they come and go.
	g.page(c, http.StatusOK, "admin_services.html", gin.H{"S": rsp, "Notice": notices[c.Query("done")], "Refresh": 5})
}

func (g *Gateway) restartForm(c *gin.Context) {
	if _, err := g.System.RestartService(rpcContext(c), &systempb.RestartServiceRequest{Name: c.Param("name")}); err != nil {
		g.abortRPC(c, err)
		return
	}
	back(c, "/admin/services", "restarted")
}

func (g *Gateway) logsPage(c *gin.Context) {
	rsp, err := g.System.ServiceLogs(rpcContext(c), &systempb.ServiceLogsRequest{Name: c.Param("name"), Lines: 200})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	g.page(c, http.StatusOK, "admin_logs.html", gin.H{"Name": c.Param("name"), "Lines": rsp.Lines})
}

func (g *Gateway) auditPage(c *gin.Context) {
	user, kind, cursor := c.Query("user"), c.Query("kind"), c.Query("cursor")
	if !audit.Kind(kind).Valid() {
		kind = ""
	}
	rsp, err := g.System.ListAudit(rpcContext(c), &systempb.ListAuditRequest{User: user, Kind: kind, Cursor: cursor, Limit: pageSize})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	q := url.Values{"user": {user}, "kind": {kind}}
	p := pager{Total: rsp.Total, Cursor: true}
	if cursor != "" {
		p.Prev = pageLink("/admin/audit", q, "", "")
	}
	if rsp.Next != "" {
		p.Next = pageLink("/admin/audit", q, "cursor", rsp.Next)
	}
	g.page(c, http.StatusOK, "admin_audit.html", gin.H{
		"Entries": rsp.Entries, "Total": rsp.Total, "User": user, "Kind": kind, "Kinds": audit.Kinds, "Pager": p,
	})
}

// pager links a list page to its neighbours.
type pager struct {
	From, To, Total int32
	Prev, Next      string
	// Cursor: pages by cursor (Prev is the newest page), so From and To
	// are unknown.
	Cursor bool
}

func newPager(path string, q url.Values, offset, total int32) pager {
	p := pager{From: min(offset+1, total), To: min(offset+pageSize, total), Total: total}
	if offset > 0 {
		p.Prev = pageLink(path, q, "offset", strconv.Itoa(int(max(offset-pageSize, 0))))
	}
	if offset+pageSize < total {
		p.Next = pageLink(path, q, "offset", strconv.Itoa(int(offset+pageSize)))
	}
	return p
}

// pageLink is path with the non-empty values of q and, unless empty or "0",
// key=value.
func pageLink(path string, q url.Values, key, value string) string {
	v := url.Values{}
	for k, vs := range q {
		if len(vs) > 0 && vs[0] != "" {
			v.Set(k, vs[0])
		}
	}
	if key != "" && value != "" && value != "0" {
		v.Set(key, value)
	}
	u := url.URL{Path: path, RawQuery: v.Encode()}
	return u.String()
}

// chart is the overview's bar chart of logins per hour, drawn as SVG by the
// template (no script: the pages' CSP allows none inline).
type chart struct {
	Bars                 []bar
	Max                  int32
	Width, Height, BarW  int
	TotalOK, TotalFailed int32
}

type bar struct {
	X, OKY, OKH, FailY, FailH int
	Label                     string
	OK, Failed                int32
}

func newChart(hours []*systempb.HourCount) chart {
	const h, bw = 120, 14
	ch := chart{Height: h, BarW: bw, Width: len(hours) * (bw + 4)}
	for _, hc := range hours {
		ch.Max = max(ch.Max, hc.Logins+hc.FailedLogins)
		ch.TotalOK += hc.Logins
		ch.TotalFailed += hc.FailedLogins
	}
	scale := func(n int32) int {
		if ch.Max == 0 {
			return 0
		}
		return int(n) * h / int(ch.Max)
	}
	for i, hc := range hours {
		okH, failH := scale(hc.Logins), scale(hc.FailedLogins)
		ch.Bars = append(ch.Bars, bar{
			X: i * (bw + 4), OKY: h - okH, OKH: okH, FailY: h - okH - failH, FailH: failH,
			Label: time.Unix(hc.Hour, 0).UTC().Format("15:04"), OK: hc.Logins, Failed: hc.FailedLogins,
		})
	}
	return ch
}

func (g *Gateway) rolesPage(c *gin.Context) {
	g.rolesView(c, http.StatusOK, gin.H{"Notice": notices[c.Query("done")]})
}

// rolesView renders /admin/roles: every role with its permissions, a form
// per role for those who may change roles, and the catalogue.
func (g *Gateway) rolesView(c *gin.Context, status int, data gin.H) {
	ctx := rpcContext(c)
	roles, err := g.Users.ListRoles(ctx, &userpb.ListRolesRequest{})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	perms, err := g.Users.ListPermissions(ctx, &userpb.ListPermissionsRequest{})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	data["Roles"], data["Catalogue"] = roles.Roles, perms.Permissions
	g.page(c, status, "admin_roles.html", data)
}

// roleForm creates (name from the form, at /admin/roles) or replaces
// (/admin/roles/{name}) a role with the permissions ticked, or deletes it
// (action=delete).
func (g *Gateway) roleForm(c *gin.Context) {
	ctx := rpcContext(c)
	name := c.Param("name")
	role := &userpb.Role{Name: name, Permissions: c.PostFormArray("permission")}
	var err error
	switch {
	case name == "":
		role.Name = c.PostForm("name")
		_, err = g.Users.CreateRole(ctx, role)
	case c.PostForm("action") == "delete":
		_, err = g.Users.DeleteRole(ctx, &userpb.DeleteRoleRequest{Name: name})
	default:
		_, err = g.Users.UpdateRole(ctx, role)
	}
	if err != nil {
		status, _, msg := rpcStatus(err)
		if status >= 500 || status == http.StatusForbidden || status == http.StatusUnauthorized {
			g.abortRPC(c, err)
			return
		}
		g.rolesView(c, status, gin.H{"Error": msg})
		return
	}
	if c.PostForm("action") == "delete" {
		back(c, "/admin/roles", "role_deleted")
		return
	}
	back(c, "/admin/roles", "role_saved")
}
