package web

import (
	"encoding/csv"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portal-go/portal/internal/audit"
	"github.com/portal-go/portal/internal/endpoint"
	systempb "github.com/portal-go/portal/proto/system"
	userpb "github.com/portal-go/portal/proto/user"
)

// The users and audit lists: their filters (read from the query the same
// way by the page and its CSV export), the sortable users table, and the
// exports, streamed a page of RPC at a time.

// dateLayout of a date input (<input type="date">).
const dayLayout = "2006-01-02"

// loginPresets are the users page's choices of last sign-in.
var loginPresets = []string{"7d", "30d", "90d", "never"}

// tableQuery is the query parameters the table route of rpc declares
// (GET /api/v1/...): the pages check theirs against the same declarations.
func (g *Gateway) tableQuery(rpc string) []endpoint.Param {
	for _, t := range g.Endpoints {
		if e, ok := t.Lookup(rpc); ok {
			for _, r := range e.Routes {
				if r.Method == http.MethodGet {
					return r.Query
				}
			}
		}
	}
	return nil
}

// checkPageQuery refuses (400 request.bad_param) a parameter that breaks
// the table's declaration of rpc, leaving out names the page reads its
// own way (dates).
func (g *Gateway) checkPageQuery(c *gin.Context, rpc string, own ...string) bool {
	var ps []endpoint.Param
	for _, p := range g.tableQuery(rpc) {
		if !slices.Contains(own, p.Name) {
			ps = append(ps, p)
		}
	}
	var bad *endpoint.InputError
	if err := endpoint.CheckQuery(input{c: c}, ps); errors.As(err, &bad) {
		g.fail(c, bad.Status, bad.Code, bad.Message)
		return false
	}
	return true
}

// dayQuery reads a date parameter (YYYY-MM-DD) as the start of that day in
// the viewer's zone, plus days; zero when absent. ok is false (and the
// request answered 400) when it is not a date.
func (g *Gateway) dayQuery(c *gin.Context, name string, days int) (time.Time, bool) {
	v := c.Query(name)
	if v == "" {
		return time.Time{}, true
	}
	d, err := time.ParseInLocation(dayLayout, v, zoneOf(c))
	if err != nil || d.Year() < 1970 {
		g.fail(c, http.StatusBadRequest, codeBadParam, name+" must be a date, YYYY-MM-DD")
		return time.Time{}, false
	}
	return d.AddDate(0, 0, days), true
}

// unixOrZero is t in unix seconds, 0 for the zero time.
func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// usersFilter is the users list's filters as the page shows them.
type usersFilter struct {
	Q, Role, Status, Sort, Order, CreatedFrom, CreatedTo, Login string
}

// values are f as query parameters.
func (f usersFilter) values() url.Values {
	return url.Values{"q": {f.Q}, "role": {f.Role}, "status": {f.Status}, "sort": {f.Sort}, "order": {f.Order},
		"created_from": {f.CreatedFrom}, "created_to": {f.CreatedTo}, "login": {f.Login}}
}

// usersRequest reads the users page's filters (the API's, but dates as days
// in the viewer's zone and last sign-in as a preset) into a request; false
// when it answered 400.
func (g *Gateway) usersRequest(c *gin.Context) (usersFilter, *userpb.ListUsersRequest, bool) {
	f := usersFilter{Q: c.Query("q"), Role: c.Query("role"), Status: c.Query("status"), Sort: c.Query("sort"), Order: c.Query("order"),
		CreatedFrom: c.Query("created_from"), CreatedTo: c.Query("created_to"), Login: c.Query("login")}
	if !g.checkPageQuery(c, "User.ListUsers", "created_from", "created_to") {
		return f, nil, false
	}
	if f.Login != "" && !slices.Contains(loginPresets, f.Login) {
		g.fail(c, http.StatusBadRequest, codeBadParam, "login must be one of "+strings.Join(loginPresets, ", "))
		return f, nil, false
	}
	from, ok := g.dayQuery(c, "created_from", 0)
	if !ok {
		return f, nil, false
	}
	to, ok := g.dayQuery(c, "created_to", 1) // the whole last day
	if !ok {
		return f, nil, false
	}
	req := &userpb.ListUsersRequest{Query: f.Q, Role: f.Role, Status: f.Status, Sort: f.Sort, Desc: f.Order == "desc",
		CreatedFrom: unixOrZero(from), CreatedTo: unixOrZero(to)}
	now := time.Now()
	switch f.Login {
	case "7d", "30d":
		days, _ := strconv.Atoi(strings.TrimSuffix(f.Login, "d"))
		req.LoginFrom = now.AddDate(0, 0, -days).Unix()
	case "90d":
		req.LoginTo = now.AddDate(0, 0, -90).Unix() // not in 90 days, or never
	case "never":
		req.LoginTo = 1
	}
	return f, req, true
}

// sortHeader is a sortable column's header: its link (the other direction
// when it is the current sort) and its aria-sort.
type sortHeader struct {
	Label, Href, AriaSort string
}

func (g *Gateway) usersPage(c *gin.Context) {
	f, req, ok := g.usersRequest(c)
	if !ok {
		return
	}
	offset := intQuery(c, "offset")
	req.Offset, req.Limit = offset, pageSize
	rsp, err := g.Users.ListUsers(rpcContext(c), req)
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	q := f.values()
	headers := map[string]sortHeader{}
	cur := f.Sort
	if cur == "" {
		cur = "name"
	}
	for _, s := range []struct{ name, label string }{{"name", "col.name"}, {"created", "col.created"}, {"last_login", "col.last_login"}} {
		h := sortHeader{Label: tr(c, s.label), AriaSort: "none"}
		order := "asc"
		if s.name != "name" {
			order = "desc" // dates: the latest first
		}
		if s.name == cur {
			h.AriaSort, order = "ascending", "desc"
			if f.Order == "desc" {
				h.AriaSort, order = "descending", "asc"
			}
		}
		v := url.Values{}
		for k, vs := range q {
			v[k] = vs
		}
		v.Set("sort", s.name)
		v.Set("order", order)
		h.Href = pageLink("/admin/users", v, "", "")
		headers[s.name] = h
	}
	data := gin.H{
		"Users": rsp.Users, "Total": rsp.Total, "F": f, "Sorts": headers, "Partial": rsp.Partial,
		"SortNames": []string{"name", "created", "last_login"}, "SortBy": cur,
		"Statuses": []string{"active", "disabled", "locked", "unverified"}, "Logins": loginPresets,
		"Export": pageLink("/admin/users.csv", q, "", ""),
		"Pager":  newPager("/admin/users", q, offset, rsp.Total),
	}
	if slices.Contains(callerOf(c).Info.Permissions, string(endpoint.RolesRead)) {
		roles, err := g.Users.ListRoles(rpcContext(c), &userpb.ListRolesRequest{})
		if err != nil {
			g.abortRPC(c, err)
			return
		}
		var names []string
		for _, r := range roles.Roles {
			names = append(names, r.Name)
		}
		data["Roles"] = names
	}
	g.page(c, http.StatusOK, "admin_users.html", data)
}

// auditFilter is the audit list's filters as the page shows them.
type auditFilter struct {
	User, Kind, From, To string
}

// auditRequest reads the audit filters (the API's, but the range as days
// in the viewer's zone) into a request; false when it answered 400.
func (g *Gateway) auditRequest(c *gin.Context) (auditFilter, *systempb.ListAuditRequest, bool) {
	f := auditFilter{User: c.Query("user"), Kind: c.Query("kind"), From: c.Query("from"), To: c.Query("to")}
	if !g.checkPageQuery(c, "System.ListAudit", "from", "to") {
		return f, nil, false
	}
	from, ok := g.dayQuery(c, "from", 0)
	if !ok {
		return f, nil, false
	}
	to, ok := g.dayQuery(c, "to", 1)
	if !ok {
		return f, nil, false
	}
	return f, &systempb.ListAuditRequest{User: f.User, Kind: f.Kind, From: unixOrZero(from), To: unixOrZero(to)}, true
}

func (g *Gateway) auditPage(c *gin.Context) {
	f, req, ok := g.auditRequest(c)
	if !ok {
		return
	}
	cursor := c.Query("cursor")
	req.Cursor, req.Limit = cursor, pageSize
	rsp, err := g.System.ListAudit(rpcContext(c), req)
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	q := url.Values{"user": {f.User}, "kind": {f.Kind}, "from": {f.From}, "to": {f.To}}
	p := pager{Total: rsp.Total, Cursor: true}
	if cursor != "" {
		p.Prev = pageLink("/admin/audit", q, "", "")
	}
	if rsp.Next != "" {
		p.Next = pageLink("/admin/audit", q, "cursor", rsp.Next)
	}
	g.page(c, http.StatusOK, "admin_audit.html", gin.H{
		"Entries": rsp.Entries, "Total": rsp.Total, "F": f, "Kinds": audit.Kinds, "Pager": p,
		"Export": pageLink("/admin/audit.csv", q, "", ""),
	})
}

// subjectLink is where an audit entry's subject is shown: a user's admin
// page, the roles or applications page, or nowhere ("").
func subjectLink(kind, id string) string {
	switch {
	case id == "":
		return ""
	case strings.HasPrefix(kind, "oidc_"):
		return "/admin/oidc"
	case strings.HasPrefix(kind, "role_") && kind != string(audit.KindRoleChange):
		return "/admin/roles"
	case kind == string(audit.KindConfigChange), kind == string(audit.KindExport):
		return ""
	}
	return "/admin/users/" + url.PathEscape(id)
}

// exportPage is how many rows one RPC of an export reads.
const exportPage = 200

// csvCell neutralises a spreadsheet formula: a cell that starts with = + -
// @, a tab or a carriage return gets a leading ' (OWASP's CSV injection
// advice), so that Excel or LibreOffice shows it as text.
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// csvExport writes a CSV download: a UTF-8 byte order mark (Excel reads
// the file as UTF-8 only with one), then each row as it comes, flushed a
// page at a time so that the file is never held whole.
type csvExport struct {
	c    *gin.Context
	w    *csv.Writer
	rows int
}

func startCSV(c *gin.Context, name string) *csvExport {
	file := name + "-" + time.Now().In(zoneOf(c)).Format("20060102-150405") + ".csv"
	c.Header("Content-Type", "text/csv; charset=utf-8")
	c.Header("Content-Disposition", `attachment; filename="`+file+`"`)
	c.Header("Cache-Control", "no-store")
	c.Header("X-Content-Type-Options", "nosniff")
	c.Status(http.StatusOK)
	_, _ = c.Writer.WriteString("\uFEFF")
	return &csvExport{c: c, w: csv.NewWriter(c.Writer)}
}

// row writes one record, each cell neutralised.
func (e *csvExport) row(cells ...string) {
	for i, s := range cells {
		cells[i] = csvCell(s)
	}
	_ = e.w.Write(cells)
}

// flush sends what was written so far.
func (e *csvExport) flush() {
	e.w.Flush()
	e.c.Writer.Flush()
}

// end closes the file: a last line that says so when it was cut at max
// rows, or when a page failed midway (the status is sent already).
func (e *csvExport) end(cut bool, max int, err error) {
	switch {
	case err != nil:
		e.row("# " + tr(e.c, "export.failed"))
	case cut:
		e.row("# " + tr(e.c, "export.truncated", "Max", max))
	}
	e.flush()
}

// stamp is unix seconds as the CSV shows them: RFC 3339 in the viewer's
// zone, "" for 0.
func stamp(c *gin.Context, sec int64) string {
	if sec == 0 {
		return ""
	}
	return time.Unix(sec, 0).In(zoneOf(c)).Format(time.RFC3339)
}

// usersCSV is GET /admin/users.csv: the users the page's filters select,
// in its order, at most ui.exportMaxRows of them. The user service records
// the export in the audit log.
func (g *Gateway) usersCSV(c *gin.Context) {
	_, req, ok := g.usersRequest(c)
	if !ok {
		return
	}
	max := g.Config.Current().UI.ExportMaxRows
	ctx := rpcContext(c)
	req.Export, req.Limit = true, int32(min(exportPage, max))
	// The first page before any byte: a refusal is still an error page.
	rsp, err := g.Users.ListUsers(ctx, req)
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	e := startCSV(c, "users")
	e.row(tr(c, "col.name"), tr(c, "col.display_name"), tr(c, "field.email"), tr(c, "col.email_verified"), tr(c, "col.roles"),
		tr(c, "col.status"), tr(c, "col.created"), tr(c, "col.last_login"), "id")
	for {
		for _, u := range rsp.Users {
			if e.rows == max {
				e.end(true, max, nil)
				return
			}
			e.row(u.Username, u.DisplayName, u.Email, strconv.FormatBool(u.EmailVerified), strings.Join(u.Roles, " "),
				tr(c, "status."+accountStatus(u)), stamp(c, u.CreatedAt), stamp(c, u.LastLoginAt), u.Id)
			e.rows++
		}
		e.flush()
		if rsp.Next == "" {
			e.end(false, max, nil)
			return
		}
		req.Cursor, req.Export, req.Offset = rsp.Next, false, 0
		if rsp, err = g.Users.ListUsers(ctx, req); err != nil {
			g.Log.Warn("users export cut short", "err", err)
			e.end(false, max, err)
			return
		}
	}
}

// accountStatus names an account's state, as its status message's suffix.
func accountStatus(u *userpb.Account) string {
	switch {
	case u.Disabled:
		return "disabled"
	case u.Locked:
		return "locked"
	case u.Email != "" && !u.EmailVerified:
		return "unverified"
	}
	return "active"
}

// auditCSV is GET /admin/audit.csv: the entries the page's filters select,
// newest first, at most ui.exportMaxRows of them. The system service
// records the export in the log itself.
func (g *Gateway) auditCSV(c *gin.Context) {
	_, req, ok := g.auditRequest(c)
	if !ok {
		return
	}
	max := g.Config.Current().UI.ExportMaxRows
	ctx := rpcContext(c)
	req.Export, req.Limit = true, int32(min(exportPage, max))
	rsp, err := g.System.ListAudit(ctx, req)
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	e := startCSV(c, "audit")
	e.row(tr(c, "col.time"), tr(c, "col.kind"), tr(c, "col.actor"), tr(c, "col.subject"), tr(c, "col.client"), tr(c, "col.detail"),
		"actor_id", "subject_id", "id")
	for {
		for _, a := range rsp.Entries {
			if e.rows == max {
				e.end(true, max, nil)
				return
			}
			e.row(time.UnixMilli(a.Time).In(zoneOf(c)).Format(time.RFC3339), a.Kind, a.ActorName, a.SubjectName, a.ClientAddr, a.Detail,
				a.ActorId, a.SubjectId, a.Id)
			e.rows++
		}
		e.flush()
		if rsp.Next == "" {
			e.end(false, max, nil)
			return
		}
		req.Cursor, req.Export = rsp.Next, false
		if rsp, err = g.System.ListAudit(ctx, req); err != nil {
			g.Log.Warn("audit export cut short", "err", err)
			e.end(false, max, err)
			return
		}
	}
}
