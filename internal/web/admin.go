package web

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ghodss/yaml"
	"github.com/gin-gonic/gin"

	pauth "github.com/portal-go/portal/internal/auth"
	"github.com/portal-go/portal/internal/config"
	systempb "github.com/portal-go/portal/proto/system"
	userpb "github.com/portal-go/portal/proto/user"
)

// The admin plane over HTTP: a JSON API under /api/v1/admin and pages under
// /admin. requireAdmin turns away non-admins early, but the system and user
// services decide: they check the caller's roles in the store themselves.

// pageSize is how many rows an admin page shows.
const pageSize = 20

// requireAdmin refuses a caller whose roles (as the user service last
// reported them) lack admin.
func (g *Gateway) requireAdmin(c *gin.Context) {
	if cl := callerOf(c); cl == nil || !pauth.IsAdmin(cl.Info.Roles) {
		g.fail(c, http.StatusForbidden, codeForbidden, "this needs the admin role")
		return
	}
	c.Next()
}

// intQuery reads a non-negative integer query parameter, 0 when absent or bad.
func intQuery(c *gin.Context, name string) int32 {
	n, err := strconv.ParseInt(c.Query(name), 10, 32)
	if err != nil || n < 0 {
		return 0
	}
	return int32(n)
}

// --- JSON API ---

func (g *Gateway) apiMySessions(c *gin.Context) {
	rsp, err := g.Users.ListSessions(rpcContext(c), &userpb.ListSessionsRequest{})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"sessions": orEmpty(rsp.Sessions)})
}

func (g *Gateway) apiEndMySession(c *gin.Context) {
	if !g.endSession(c, c.Param("id"), false) {
		return
	}
	c.Status(http.StatusNoContent)
}

// endSession ends a session through the user service (asAdmin: through the
// system service, for anyone's) and drops it on this gateway at once.
func (g *Gateway) endSession(c *gin.Context, id string, asAdmin bool) bool {
	req := &userpb.RevokeSessionRequest{SessionId: id}
	var err error
	if asAdmin {
		_, err = g.System.RevokeSession(rpcContext(c), req)
	} else {
		_, err = g.Users.RevokeSession(rpcContext(c), req)
	}
	if err != nil {
		g.abortRPC(c, err)
		return false
	}
	g.revoke(c.Request.Context(), id)
	if cl := callerOf(c); cl.Info.SessionId == id && cl.FromCookie {
		clearSessionCookie(c)
	}
	return true
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func (g *Gateway) apiUsers(c *gin.Context) {
	limit := intQuery(c, "limit")
	rsp, err := g.System.ListUsers(rpcContext(c), &userpb.ListUsersRequest{Query: c.Query("q"), Offset: intQuery(c, "offset"), Limit: limit})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"users": orEmpty(rsp.Users), "total": rsp.Total})
}

func (g *Gateway) apiUser(c *gin.Context) {
	rsp, err := g.System.GetUser(rpcContext(c), &userpb.GetUserRequest{Id: c.Param("id")})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"user": rsp.User, "sessions": orEmpty(rsp.Sessions)})
}

// userPatch is the body of PATCH /admin/users/{id}: absent fields stay.
type userPatch struct {
	Roles    *[]string `json:"roles"`
	Disabled *bool     `json:"disabled"`
}

func (g *Gateway) apiPatchUser(c *gin.Context) {
	var p userPatch
	if !decodeJSON(c, &p) {
		return
	}
	if p.Roles == nil && p.Disabled == nil {
		abortError(c, http.StatusBadRequest, codeNothing, "nothing to change: send roles and/or disabled")
		return
	}
	req := &userpb.UpdateUserRequest{Id: c.Param("id"), Disabled: p.Disabled}
	if p.Roles != nil {
		req.Roles = &userpb.Roles{Roles: *p.Roles}
	}
	rsp, err := g.System.UpdateUser(rpcContext(c), req)
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"user": rsp.User, "sessions_ended": rsp.SessionsEnded})
}

func (g *Gateway) apiDeleteUser(c *gin.Context) {
	if _, err := g.System.DeleteUser(rpcContext(c), &userpb.DeleteUserRequest{Id: c.Param("id")}); err != nil {
		g.abortRPC(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (g *Gateway) apiEndSession(c *gin.Context) {
	if !g.endSession(c, c.Param("id"), true) {
		return
	}
	c.Status(http.StatusNoContent)
}

func (g *Gateway) apiConfig(c *gin.Context) {
	rsp, err := g.System.GetConfig(rpcContext(c), &systempb.GetConfigRequest{})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	g.configJSON(c, rsp)
}

// configJSON answers with the config as JSON (the settings object), its
// source and whether it can be written.
func (g *Gateway) configJSON(c *gin.Context, rsp *systempb.ConfigResponse) {
	var settings any
	if err := yamlToJSON(rsp.Document, &settings); err != nil {
		g.abortRPC(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"config": settings, "yaml": rsp.Document, "source": rsp.Source, "writable": rsp.Writable})
}

// apiPutConfig replaces the config with the body: a JSON settings object
// ({"auth": {...}, "login": {...}}; JSON is yaml too) or, with Content-Type
// application/yaml, a yaml document.
func (g *Gateway) apiPutConfig(c *gin.Context) {
	var doc []byte
	switch c.ContentType() {
	case "application/yaml", "application/x-yaml", "text/yaml":
		b, err := io.ReadAll(c.Request.Body)
		if err != nil {
			abortError(c, http.StatusRequestEntityTooLarge, codeTooLarge, "the request body is over "+strconv.Itoa(maxBody)+" bytes")
			return
		}
		doc = b
	default:
		var raw json.RawMessage
		if !decodeJSON(c, &raw) {
			return
		}
		doc = raw
	}
	rsp, err := g.System.UpdateConfig(rpcContext(c), &systempb.UpdateConfigRequest{Document: string(doc)})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	g.configJSON(c, rsp)
}

func (g *Gateway) apiServices(c *gin.Context) {
	rsp, err := g.System.ListServices(rpcContext(c), &systempb.ListServicesRequest{})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"services": orEmpty(rsp.Services), "supervised": rsp.Supervised, "processes": orEmpty(rsp.Processes)})
}

func (g *Gateway) apiRestartService(c *gin.Context) {
	if _, err := g.System.RestartService(rpcContext(c), &systempb.RestartServiceRequest{Name: c.Param("name")}); err != nil {
		g.abortRPC(c, err)
		return
	}
	c.Status(http.StatusAccepted)
}

func (g *Gateway) apiServiceLogs(c *gin.Context) {
	rsp, err := g.System.ServiceLogs(rpcContext(c), &systempb.ServiceLogsRequest{Name: c.Param("name"), Lines: intQuery(c, "lines")})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"lines": orEmpty(rsp.Lines)})
}

func (g *Gateway) apiAudit(c *gin.Context) {
	rsp, err := g.System.ListAudit(rpcContext(c), &systempb.ListAuditRequest{
		User: c.Query("user"), Kind: c.Query("kind"), Cursor: c.Query("cursor"), Limit: intQuery(c, "limit"),
	})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"entries": orEmpty(rsp.Entries), "total": rsp.Total, "next": rsp.Next})
}

func (g *Gateway) apiLockouts(c *gin.Context) {
	rsp, err := g.Users.ListLockouts(rpcContext(c), &userpb.ListLockoutsRequest{})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"lockouts": orEmpty(rsp.Lockouts)})
}

func (g *Gateway) apiLiftLockout(c *gin.Context) {
	if _, err := g.Users.LiftLockout(rpcContext(c), &userpb.LiftLockoutRequest{Kind: c.Param("kind"), Key: strings.TrimPrefix(c.Param("key"), "/")}); err != nil {
		g.abortRPC(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (g *Gateway) apiOverview(c *gin.Context) {
	rsp, err := g.System.Overview(rpcContext(c), &systempb.OverviewRequest{})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{
		"users": rsp.Users, "disabled_users": rsp.DisabledUsers, "active_sessions": rsp.ActiveSessions,
		"services_up": rsp.ServicesUp, "nodes": rsp.Nodes, "hours": orEmpty(rsp.Hours),
	})
}

// --- pages ---

// notices are the notices an action's redirect may ask a page to show
// (?done=name), each the message "notice.<name>".
var notices = []string{"session_ended", "sessions_ended", "roles_granted", "roles_revoked", "disabled", "enabled", "deleted",
	"config", "restarted", "lifted", "password", "zone"}

// back redirects (303) to path with a notice, after a form's action.
func back(c *gin.Context, path, notice string) {
	u := url.URL{Path: path, RawQuery: url.Values{"done": {notice}}.Encode()}
	c.Redirect(http.StatusSeeOther, u.String())
}

func (g *Gateway) accountPage(c *gin.Context) {
	g.accountView(c, http.StatusOK, gin.H{})
}

// accountView renders /account with the caller's sessions.
func (g *Gateway) accountView(c *gin.Context, status int, data gin.H) {
	rsp, err := g.Users.ListSessions(rpcContext(c), &userpb.ListSessionsRequest{})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	data["Sessions"] = rsp.Sessions
	if n, err := strconv.Atoi(c.Query("ended")); err == nil && n > 0 {
		data["Ended"] = n
	}
	data["ZoneName"] = zoneOf(c).String()
	if v, ok := data["ZoneValue"]; ok {
		data["ZoneName"] = v
	}
	data["Zones"] = commonZones
	g.page(c, status, "account.html", data)
}

func (g *Gateway) endMySessionForm(c *gin.Context) {
	id := c.Param("id")
	if id == "others" {
		g.endOtherSessionsForm(c)
		return
	}
	mine := callerOf(c).Info.SessionId == id
	if !g.endSession(c, id, false) {
		return
	}
	if mine {
		c.Redirect(http.StatusSeeOther, "/login")
		return
	}
	back(c, "/account", "session_ended")
}

// endOtherSessionsForm ends every session of the caller but the current one.
func (g *Gateway) endOtherSessionsForm(c *gin.Context) {
	rsp, err := g.Users.ListSessions(rpcContext(c), &userpb.ListSessionsRequest{})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	n := 0
	for _, s := range rsp.Sessions {
		if s.Current {
			continue
		}
		if !g.endSession(c, s.Id, false) {
			return
		}
		n++
	}
	u := url.URL{Path: "/account", RawQuery: url.Values{"done": {"sessions_ended"}, "ended": {strconv.Itoa(n)}}.Encode()}
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
	rsp, err := g.System.ListUsers(rpcContext(c), &userpb.ListUsersRequest{Query: q, Offset: offset, Limit: pageSize})
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
	rsp, err := g.System.GetUser(rpcContext(c), &userpb.GetUserRequest{Id: c.Param("id")})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	g.page(c, http.StatusOK, "admin_user.html", gin.H{
		"User": rsp.User, "Sessions": rsp.Sessions, "IsAdmin": pauth.IsAdmin(rsp.User.Roles),
	})
}

// userActionForm applies one action of the users pages: roles (admin=on or
// off), disable, enable, delete.
func (g *Gateway) userActionForm(c *gin.Context) {
	id, action := c.Param("id"), c.Param("action")
	ctx := rpcContext(c)
	var err error
	switch action {
	case "roles":
		roles := []string{pauth.RoleUser}
		if c.PostForm("admin") == "on" {
			roles = append(roles, pauth.RoleAdmin)
		}
		_, err = g.System.UpdateUser(ctx, &userpb.UpdateUserRequest{Id: id, Roles: &userpb.Roles{Roles: roles}})
	case "disable", "enable":
		disabled := action == "disable"
		_, err = g.System.UpdateUser(ctx, &userpb.UpdateUserRequest{Id: id, Disabled: &disabled})
	case "delete":
		_, err = g.System.DeleteUser(ctx, &userpb.DeleteUserRequest{Id: id})
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
	notice := action + "d" // disabled, enabled
	if action == "roles" {
		notice = "roles_revoked"
		if c.PostForm("admin") == "on" {
			notice = "roles_granted"
		}
	}
	back(c, "/admin/users/"+id, notice)
}

func (g *Gateway) endSessionForm(c *gin.Context) {
	if !g.endSession(c, c.Param("id"), true) {
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

func (g *Gateway) configPage(c *gin.Context) {
	rsp, err := g.System.GetConfig(rpcContext(c), &systempb.GetConfigRequest{})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	g.page(c, http.StatusOK, "admin_config.html", gin.H{"Config": rsp, "Doc": rsp.Document})
}

// configForm saves the config in two steps: the posted document is checked
// (every problem shown beside the field at once) and its changes shown for
// confirmation; the confirmed post saves it.
func (g *Gateway) configForm(c *gin.Context) {
	doc := c.PostForm("yaml")
	if c.PostForm(confirmField) != "yes" {
		next, err := config.Parse([]byte(doc))
		if err != nil {
			g.configProblems(c, http.StatusBadRequest, doc, err.Error())
			return
		}
		lines := strings.Split(config.Diff(*g.Config.Current(), next), "; ")
		if len(lines) == 1 && lines[0] == "no change" {
			lines = []string{tr(c, "confirm.config.none")}
		}
		g.askConfirm(c, confirmation{
			Title: tr(c, "confirm.config.title"), What: tr(c, "confirm.config.what"), Button: tr(c, "confirm.config.button"),
			Cancel: "/admin/config", Lines: lines,
		})
		return
	}
	if _, err := g.System.UpdateConfig(rpcContext(c), &systempb.UpdateConfigRequest{Document: doc}); err != nil {
		status, _, detail, _ := rpcStatus(c, err)
		if status >= 500 {
			g.abortRPC(c, err)
			return
		}
		g.configProblems(c, status, doc, detail)
		return
	}
	back(c, "/admin/config", "config")
}

// configProblems shows the config page again with the rejected text in the
// form, to be mended, and each of its problems beside it.
func (g *Gateway) configProblems(c *gin.Context, status int, doc, detail string) {
	cur, err := g.System.GetConfig(rpcContext(c), &systempb.GetConfigRequest{})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	var problems []string
	for _, line := range strings.Split(detail, "\n") {
		if line = strings.TrimSpace(strings.TrimPrefix(line, "config: invalid: ")); line != "" {
			problems = append(problems, line)
		}
	}
	g.page(c, status, "admin_config.html", gin.H{"Config": cur, "Doc": doc, "Problems": problems,
		"Errors": map[string]string{"yaml": tr(c, "config.problems", "Count", len(problems))}})
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

// commonZones are the zones the account page suggests; any IANA name is
// accepted.
var commonZones = []string{"UTC", "Asia/Shanghai", "Asia/Hong_Kong", "Asia/Taipei", "Asia/Singapore", "Asia/Tokyo",
	"Europe/London", "Europe/Berlin", "America/New_York", "America/Chicago", "America/Los_Angeles", "Australia/Sydney"}

// auditKinds are the kinds the audit page offers as filters.
var auditKinds = []string{"register", "login", "login_failed", "lockout", "logout", "password_change",
	"role_change", "disable", "enable", "delete", "session_ended", "config_change", "lockout_lifted"}

func (g *Gateway) auditPage(c *gin.Context) {
	user, kind, cursor := c.Query("user"), c.Query("kind"), c.Query("cursor")
	if kind != "" && !slices.Contains(auditKinds, kind) {
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
		"Entries": rsp.Entries, "Total": rsp.Total, "User": user, "Kind": kind, "Kinds": auditKinds, "Pager": p,
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

// yamlToJSON decodes a yaml document (the config as the system service
// renders it) into v.
func yamlToJSON(doc string, v any) error {
	js, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		return err
	}
	return json.Unmarshal(js, v)
}
