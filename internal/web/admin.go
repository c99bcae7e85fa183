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
var adminPages = []adminPage{
	{"/admin", "nav.overview", "tab-overview", "overview", endpoint.OverviewRead},
	{"/admin/users", "nav.users", "tab-users", "users", endpoint.UsersRead},
	{"/admin/roles", "nav.roles", "tab-roles", "roles", endpoint.RolesRead},
	{"/admin/config", "nav.config", "tab-config", "config", endpoint.ConfigRead},
	{"/admin/services", "nav.services", "tab-services", "services", endpoint.ServicesRead},
	{"/admin/audit", "nav.audit", "tab-audit", "audit", endpoint.AuditRead},
	{"/admin/lockouts", "nav.lockouts", "tab-lockouts", "lockouts", endpoint.UsersRead},
	{"/admin/mail", "nav.mail", "tab-mail", "mail", endpoint.UsersRead},
	{"/admin/oidc", "nav.oidc", "tab-oidc", "oidc", endpoint.ClientsRead},
}

// adminPage is an entry of the admin navigation: Title is a message id, Nav
// the page's navOf name (for aria-current).
type adminPage struct {
	Path, Title, ID, Nav string
	Needs                endpoint.Permission
}

// needs refuses a caller whose permissions (as the user service last
// reported them) lack p: an early, friendly refusal; the service checks
// again.
func (g *Gateway) needs(p endpoint.Permission) gin.HandlerFunc {
	return func(c *gin.Context) {
		if cl := callerOf(c); cl == nil || !slices.Contains(cl.Info.Permissions, string(p)) {
			g.fail(c, http.StatusForbidden, codeForbidden, "this needs the permission "+string(p))
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
	g.fail(c, http.StatusForbidden, codeForbidden, "no admin page is open to this account")
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

// notices are the notices an action's redirect may ask a page to show
// (?done=name), each the message "notice.<name>".
var notices = []string{"session_ended", "sessions_ended", "roles", "disabled", "enabled", "deleted", "config", "config_rollback", "restarted",
	"token_revoked", "role_saved", "role_deleted", "lifted", "password", "zone",
	"app_revoked", "client_disable", "client_enable", "client_delete"}

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
	g.page(c, http.StatusOK, "admin_overview.html", gin.H{"O": rsp, "Chart": newChart(rsp.Hours, zoneOf(c)), "ZoneName": zoneOf(c).String()})
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
		"Pager": newPager("/admin/users", url.Values{"q": {q}}, offset, rsp.Total),
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
	data := gin.H{"User": rsp.User, "Sessions": rsp.Sessions, "Tokens": keys.Tokens}
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
		g.fail(c, http.StatusNotFound, codeNoSuchAction, "no such action")
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
	g.page(c, http.StatusOK, "admin_lockouts.html", gin.H{"Lockouts": rsp.Lockouts})
}

func (g *Gateway) liftLockoutForm(c *gin.Context) {
	req := &userpb.LiftLockoutRequest{Kind: c.PostForm("kind"), Key: c.PostForm("key")}
	if _, err := g.Users.LiftLockout(rpcContext(c), req); err != nil {
		g.abortRPC(c, err)
		return
	}
	back(c, "/admin/lockouts", "lifted")
}

func (g *Gateway) servicesPage(c *gin.Context) {
	rsp, err := g.System.ListServices(rpcContext(c), &systempb.ListServicesRequest{})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	g.page(c, http.StatusOK, "admin_services.html", gin.H{"S": rsp})
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
// template (no script: the pages' CSP allows none inline), with a y axis of
// counts and x labels every fourth hour in the viewer's zone.
type chart struct {
	Bars                 []bar
	Ticks                []tick
	Max                  int32
	Width, ViewH, BarW   int
	Left, Top, Bottom    int
	TotalOK, TotalFailed int32
}

type bar struct {
	X, OKY, OKH, FailY, FailH int
	Label                     string
	ShowLabel                 bool
	OK, Failed                int32
}

type tick struct {
	Y     int
	Label int32
}

func newChart(hours []*systempb.HourCount, zone *time.Location) chart {
	const h, bw, left, top = 120, 14, 24, 12
	ch := chart{BarW: bw, Left: left, Top: top, Bottom: top + h, ViewH: top + h + 16, Width: left + 4 + len(hours)*(bw+4)}
	for _, hc := range hours {
		ch.Max = max(ch.Max, hc.Logins+hc.FailedLogins)
		ch.TotalOK += hc.Logins
		ch.TotalFailed += hc.FailedLogins
	}
	top1 := max(ch.Max, 1)
	scale := func(n int32) int { return int(n) * h / int(top1) }
	for _, v := range []int32{0, top1 / 2, top1} {
		if v == 0 && top1 > 1 || v > 0 {
			ch.Ticks = append(ch.Ticks, tick{Y: ch.Bottom - scale(v) + 2, Label: v})
		}
	}
	if top1 == 1 {
		ch.Ticks = []tick{{Y: ch.Bottom + 2, Label: 0}, {Y: top + 2, Label: 1}}
	}
	for i, hc := range hours {
		okH, failH := scale(hc.Logins), scale(hc.FailedLogins)
		ch.Bars = append(ch.Bars, bar{
			X: left + 4 + i*(bw+4), OKY: ch.Bottom - okH, OKH: okH, FailY: ch.Bottom - okH - failH, FailH: failH,
			Label: time.Unix(hc.Hour, 0).In(zone).Format("15:04"), ShowLabel: i%4 == 0, OK: hc.Logins, Failed: hc.FailedLogins,
		})
	}
	return ch
}

func (g *Gateway) rolesPage(c *gin.Context) {
	g.rolesView(c, http.StatusOK, gin.H{})
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
		status, _, msg := rpcMessage(c, err)
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

// commonZones are the zones the account page suggests; any IANA name is
// accepted.
var commonZones = []string{"UTC", "Asia/Shanghai", "Asia/Hong_Kong", "Asia/Taipei", "Asia/Singapore", "Asia/Tokyo",
	"Europe/London", "Europe/Berlin", "America/New_York", "America/Chicago", "America/Los_Angeles", "Australia/Sydney"}
