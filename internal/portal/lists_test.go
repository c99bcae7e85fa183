package portal_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portal-go/portal/internal/testenv"
	"github.com/portal-go/portal/internal/testenv/poll"
	"github.com/portal-go/portal/internal/testenv/portaltest"
)

// usernames of a users answer of the JSON API.
func usernames(t *testing.T, r response) []string {
	t.Helper()
	var got struct {
		Users []struct {
			Username    string `json:"username"`
			LastLoginAt int64  `json:"last_login_at"`
		} `json:"users"`
		Total int `json:"total"`
	}
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatalf("users: %v: %s", err, r.body)
	}
	var out []string
	for _, u := range got.Users {
		out = append(out, u.Username)
	}
	return out
}

// readCSV checks an export's headers and its byte order mark and returns
// its rows.
func readCSV(t *testing.T, r response, name string) [][]string {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != "text/csv; charset=utf-8" {
		t.Errorf("%s: Content-Type %q", name, ct)
	}
	if cd := r.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, `attachment; filename="`+name+"-") || !strings.HasSuffix(cd, `.csv"`) {
		t.Errorf("%s: Content-Disposition %q", name, cd)
	}
	if !bytes.HasPrefix(r.body, []byte("\xEF\xBB\xBF")) {
		t.Fatalf("%s: no UTF-8 byte order mark: %q", name, r.body[:min(len(r.body), 16)])
	}
	cr := csv.NewReader(bytes.NewReader(r.body[3:]))
	cr.FieldsPerRecord = -1
	rows, err := cr.ReadAll()
	if err != nil {
		t.Fatalf("%s: %v: %s", name, err, r.body)
	}
	return rows
}

// TestUsersListAndExport: the users list sorts and filters over the JSON
// API and the page, refuses bad parameters with 400, and exports as CSV
// (headers, byte order mark, formula cells neutralised, cut at
// ui.exportMaxRows with a note, audited); a caller without users.read gets
// no export.
func TestUsersListAndExport(t *testing.T) {
	parallel(t)
	p := portaltest.Start(t, portaltest.Options{Config: "ui:\n  exportMaxRows: 3\n"})
	c := newClient(t, p)
	admin, _ := c.login("admin", testenv.AdminPassword)
	for _, n := range []string{"list_b", "list_a", "list_c"} {
		c.register(n, "list-password-1")
	}
	tokB, _ := c.login("list_b", "list-password-1")
	c.expect(c.do("PATCH", "/api/v1/me", tokB, map[string]string{"display_name": "=HYPERLINK(\"http://x\")"}), http.StatusOK)
	c.login("list_c", "list-password-1")

	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"q=list_", []string{"list_a", "list_b", "list_c"}},
		{"q=list_&order=desc", []string{"list_c", "list_b", "list_a"}},
		{"q=list_&sort=created", []string{"list_b", "list_a", "list_c"}},
		{"q=list_&sort=last_login&order=desc", []string{"list_c", "list_b", "list_a"}},
		{"q=list_&login_to=1", []string{"list_a"}},
		{"role=admin", []string{"admin"}},
		{"q=list_&status=active&limit=2", []string{"list_a", "list_b"}},
	} {
		r := c.expect(c.do("GET", "/api/v1/admin/users?"+tc.query, admin, nil), http.StatusOK)
		if got := usernames(t, r); !slices.Equal(got, tc.want) {
			t.Errorf("?%s: %v, want %v", tc.query, got, tc.want)
		}
	}
	for _, bad := range []string{"status=sleepy", "sort=age", "order=up", "created_from=yesterday", "limit=-1", "login_to=1.5"} {
		r := c.do("GET", "/api/v1/admin/users?"+bad, admin, nil)
		if r.StatusCode != http.StatusBadRequest || errorCode(t, r) != "request.bad_param" {
			t.Errorf("?%s: %d %s, want 400 request.bad_param", bad, r.StatusCode, r.body)
		}
	}
	if r := c.do("GET", "/api/v1/admin/users?cursor=nonsense", admin, nil); r.StatusCode != http.StatusBadRequest || errorCode(t, r) != "user.bad_query" {
		t.Errorf("a bad cursor: %d %s, want 400 user.bad_query", r.StatusCode, r.body)
	}

	// The page: sortable headers are links with aria-sort, filters are
	// labelled, the last sign-in is a column.
	page := string(c.expect(c.do("GET", "/admin/users?sort=created&order=desc&status=active", admin, nil), http.StatusOK).body)
	for _, want := range []string{`aria-sort="descending"><a href="/admin/users?order=asc&amp;sort=created&amp;status=active"`,
		`<label for="status">`, `<label for="created_from">`, `<option value="active" selected>`,
		`href="/admin/users.csv?order=desc&amp;sort=created&amp;status=active"`, `data-label="Last sign-in"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the users page lacks %s", want)
		}
	}
	if r := c.do("GET", "/admin/users?created_from=31/12/2026", admin, nil); r.StatusCode != http.StatusBadRequest {
		t.Errorf("a bad date on the page: %d", r.StatusCode)
	}

	// The export: every filter applies; the display name that is a formula
	// is text.
	rows := readCSV(t, c.expect(c.do("GET", "/admin/users.csv?q=list_b", admin, nil), http.StatusOK), "users")
	if len(rows) != 2 || rows[1][0] != "list_b" || rows[1][1] != `'=HYPERLINK("http://x")` {
		t.Errorf("users.csv?q=list_b: %q", rows)
	}
	// Four accounts, three rows at most: cut, and the last line says so.
	rows = readCSV(t, c.expect(c.do("GET", "/admin/users.csv", admin, nil, "Accept-Language", "zh-CN"), http.StatusOK), "users")
	if len(rows) != 5 || rows[0][0] != "名称" || !strings.HasPrefix(rows[4][0], "# ") || !strings.Contains(rows[4][0], "3") {
		t.Errorf("users.csv cut at 3: %q", rows)
	}
	// Exactly at the bound: not cut.
	rows = readCSV(t, c.expect(c.do("GET", "/admin/users.csv?q=list_", admin, nil), http.StatusOK), "users")
	if len(rows) != 4 || strings.HasPrefix(rows[3][0], "#") {
		t.Errorf("users.csv?q=list_: %q", rows)
	}
	poll.Wait(t, 30*time.Second, "the export in the audit log", func() bool {
		r := c.expect(c.do("GET", "/api/v1/admin/audit?kind=export&user=admin", admin, nil), http.StatusOK)
		return strings.Contains(string(r.body), `users as CSV: q=list_b`)
	})

	// Not for a caller without users.read.
	plain, _ := c.login("list_a", "list-password-1")
	for _, path := range []string{"/admin/users.csv", "/admin/audit.csv"} {
		if r := c.do("GET", path, plain, nil); r.StatusCode != http.StatusForbidden || bytes.Contains(r.body, []byte("list_b")) {
			t.Errorf("GET %s as a plain user: %d", path, r.StatusCode)
		}
	}
}

// TestAuditRangeAndExport: the audit log filters by a date range in the
// viewer's zone (page) or unix seconds (API), links actors and subjects to
// the users' pages, and exports as CSV with formula cells neutralised.
func TestAuditRangeAndExport(t *testing.T) {
	parallel(t)
	p := portaltest.Start(t, portaltest.Options{})
	c := newClient(t, p)
	admin, _ := c.login("admin", testenv.AdminPassword)
	// A failed sign-in's name is whatever the client sent.
	c.do("POST", "/api/v1/login", "", map[string]string{"username": "=1+2", "password": "wrong-password-1"})
	poll.Wait(t, 30*time.Second, "the failed sign-in in the log", func() bool {
		r := c.expect(c.do("GET", "/api/v1/admin/audit?kind=login_failed", admin, nil), http.StatusOK)
		return strings.Contains(string(r.body), `=1+2`)
	})
	now := time.Now()
	for _, tc := range []struct {
		query string
		some  bool
	}{
		{fmt.Sprintf("from=%d", now.Add(-time.Hour).Unix()), true},
		{fmt.Sprintf("to=%d", now.Add(-time.Hour).Unix()), false},
		{fmt.Sprintf("from=%d&to=%d", now.Add(-time.Hour).Unix(), now.Add(time.Hour).Unix()), true},
	} {
		var got struct {
			Entries []any `json:"entries"`
			Total   int   `json:"total"`
		}
		r := c.expect(c.do("GET", "/api/v1/admin/audit?"+tc.query, admin, nil), http.StatusOK)
		if err := json.Unmarshal(r.body, &got); err != nil || (len(got.Entries) > 0) != tc.some || got.Total != len(got.Entries) {
			t.Errorf("?%s: %d entries, total %d (%v)", tc.query, len(got.Entries), got.Total, err)
		}
	}
	for _, bad := range []string{"from=yesterday", "kind=nap", "to=-3"} {
		if r := c.do("GET", "/api/v1/admin/audit?"+bad, admin, nil); r.StatusCode != http.StatusBadRequest || errorCode(t, r) != "request.bad_param" {
			t.Errorf("?%s: %d %s", bad, r.StatusCode, r.body)
		}
	}

	// The page's dates are days in the viewer's zone: today (there) holds
	// the entries, yesterday none.
	zone, _ := time.LoadLocation("Asia/Shanghai")
	today := now.In(zone).Format("2006-01-02")
	yesterday := now.In(zone).AddDate(0, 0, -1).Format("2006-01-02")
	withZone := []string{"Cookie", "portal_tz=Asia/Shanghai"}
	page := string(c.expect(c.do("GET", "/admin/audit?from="+today+"&to="+today, admin, nil, withZone...), http.StatusOK).body)
	if !strings.Contains(page, `class="kind-login"`) || !strings.Contains(page, `<a href="/admin/users/`) || !strings.Contains(page, `class="actor"`) {
		t.Errorf("today's audit page lacks the admin's login, linked")
	}
	page = string(c.expect(c.do("GET", "/admin/audit?to="+yesterday, admin, nil, withZone...), http.StatusOK).body)
	if strings.Contains(page, `class="kind-login"`) {
		t.Errorf("the audit page until yesterday shows today's login")
	}

	rows := readCSV(t, c.expect(c.do("GET", "/admin/audit.csv?kind=login_failed&"+url.Values{"from": {today}}.Encode(), admin, nil, withZone...), http.StatusOK), "audit")
	if len(rows) < 2 || rows[1][1] != "login_failed" || rows[1][3] != "'=1+2" || !strings.HasSuffix(rows[1][0], "+08:00") {
		t.Errorf("audit.csv: %q", rows)
	}
	poll.Wait(t, 30*time.Second, "the audit export in the log", func() bool {
		r := c.expect(c.do("GET", "/api/v1/admin/audit?kind=export", admin, nil), http.StatusOK)
		return strings.Contains(string(r.body), `audit entries as CSV: kind=login_failed from=`)
	})
}
