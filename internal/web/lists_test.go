package web

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"

	"github.com/portal-go/portal/internal/config"
	"github.com/portal-go/portal/internal/platform"
	"github.com/portal-go/portal/internal/testenv/poll"
	userpb "github.com/portal-go/portal/proto/user"
)

// pagedUsers serves ListUsers from a generated list of n accounts, a page
// per call; before each page after the second it waits until the client
// has read rows, and fails the page (failAt) when asked.
type pagedUsers struct {
	*fakeUsers
	n, failAt int
	read      *atomic.Int64 // bytes the client has read
	calls     atomic.Int32
	// streamed: every page after the second found rows read already.
	streamed atomic.Bool
}

func (p *pagedUsers) ListUsers(ctx context.Context, in *userpb.ListUsersRequest, _ ...client.CallOption) (*userpb.ListUsersResponse, error) {
	call := int(p.calls.Add(1))
	if call == p.failAt {
		return nil, merrors.InternalServerError("user.unavailable", "gone")
	}
	if call > 2 && !poll.Until(10*time.Second, func() bool { return p.read.Load() > 0 }) {
		p.streamed.Store(false)
	}
	start := 0
	if in.Cursor != "" {
		start, _ = strconv.Atoi(in.Cursor)
	}
	rsp := &userpb.ListUsersResponse{Total: int32(p.n)}
	for i := start; i < min(start+int(in.Limit), p.n); i++ {
		rsp.Users = append(rsp.Users, &userpb.Account{Id: fmt.Sprint("id-", i), Username: fmt.Sprintf("user%05d", i), Roles: []string{"user"}, CreatedAt: 1})
	}
	if end := start + int(in.Limit); end < p.n {
		rsp.Next = strconv.Itoa(end)
	}
	return rsp, nil
}

func exportGateway(t *testing.T, users userpb.UserService, maxRows int) *Gateway {
	t.Helper()
	s := settings()
	s.UI.ExportMaxRows = maxRows
	center, err := config.Static(s)
	if err != nil {
		t.Fatal(err)
	}
	return New(Options{Users: users, System: &fakeSystem{}, Auth: verifier(t), Config: center,
		Cache: platform.NewMemoryCache(time.Minute), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

// TestUsersExportStreams: the export writes rows while it still reads
// pages (the client reads the first ones before the service is asked for
// the third page), so it never holds the file; it stops at the bound with
// a last line that says so, and a page that fails midway ends the file
// with a line that says that.
func TestUsersExportStreams(t *testing.T) {
	fake := newFakeUsers()
	fake.info = &userpb.InfoResponse{Id: "u-1", Username: "alice", Roles: []string{"admin"}, SessionId: "s-1", Permissions: []string{"users.read"}}
	var read atomic.Int64
	users := &pagedUsers{fakeUsers: fake, n: 5000, read: &read}
	users.streamed.Store(true)
	srv := httptest.NewServer(exportGateway(t, users, 3000).Handler())
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/admin/users.csv?status=active", nil)
	req.Header.Set("Authorization", "Bearer "+validToken(t, "s-1"))
	rsp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer rsp.Body.Close()
	sc := bufio.NewScanner(rsp.Body)
	lines, last := 0, ""
	for sc.Scan() {
		read.Add(int64(len(sc.Bytes()) + 1))
		lines++
		last = sc.Text()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if !users.streamed.Load() {
		t.Errorf("the service was asked for later pages before the client could read a row: the export is not streamed")
	}
	// A header, 3000 rows, the note; 15 pages of 200 read and one more to
	// see that there is more.
	if lines != 3002 || !strings.HasPrefix(last, "# ") || !strings.Contains(last, "3000") {
		t.Errorf("%d lines, the last %q; want 3002 ending with the note", lines, last)
	}
	if n := users.calls.Load(); n != 16 {
		t.Errorf("%d pages asked for, want 16", n)
	}

	// A page failing midway: the rows so far, then a line that says so.
	users = &pagedUsers{fakeUsers: fake, n: 1000, read: &read, failAt: 2}
	w := serve(exportGateway(t, users, 3000), get("/admin/users.csv", bearer(validToken(t, "s-1"))))
	body := w.Body.String()
	if w.Code != http.StatusOK || strings.Count(body, "\n") != 202 || !strings.Contains(body, "\n# ") {
		t.Errorf("failing export: %d, %d lines, ends %q", w.Code, strings.Count(body, "\n"), body[max(0, len(body)-80):])
	}
	// Failing at once: an error, not a file.
	users = &pagedUsers{fakeUsers: fake, n: 1000, read: &read, failAt: 1}
	if w := serve(exportGateway(t, users, 3000), get("/admin/users.csv", bearer(validToken(t, "s-1")))); w.Code == http.StatusOK || w.Header().Get("Content-Disposition") != "" {
		t.Errorf("export failing at once: %d %v", w.Code, w.Header())
	}
}

func TestCSVCell(t *testing.T) {
	for in, want := range map[string]string{
		"=1+2": "'=1+2", "+1": "'+1", "-1": "'-1", "@SUM(A1)": "'@SUM(A1)", "\tx": "'\tx", "\rx": "'\rx",
		"alice": "alice", "": "", "张三": "张三", "a=b": "a=b",
	} {
		if got := csvCell(in); got != want {
			t.Errorf("csvCell(%q) = %q, want %q", in, got, want)
		}
	}
}
