package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"go-micro.dev/v4/client"

	pauth "github.com/portal-go/portal/internal/auth"
	userpb "github.com/portal-go/portal/proto/user"
)

// adminUsers is a fakeUsers that knows one more user and counts the
// changes made to it.
type adminUsers struct {
	*fakeUsers
	deletes, updates int
}

func (f *adminUsers) GetUser(context.Context, *userpb.GetUserRequest, ...client.CallOption) (*userpb.GetUserResponse, error) {
	return &userpb.GetUserResponse{User: &userpb.Account{Id: "u-2", Username: "bob", Roles: []string{pauth.RoleUser}}}, nil
}

func (f *adminUsers) DeleteUser(context.Context, *userpb.DeleteUserRequest, ...client.CallOption) (*userpb.DeleteUserResponse, error) {
	f.deletes++
	return &userpb.DeleteUserResponse{}, nil
}

func (f *adminUsers) UpdateUser(context.Context, *userpb.UpdateUserRequest, ...client.CallOption) (*userpb.UpdateUserResponse, error) {
	f.updates++
	return &userpb.UpdateUserResponse{User: &userpb.Account{Id: "u-2"}}, nil
}

// signedInPost is a form post with a valid CSRF pair and session.
func signedInPost(t *testing.T, target string, form url.Values) *http.Request {
	t.Helper()
	r := csrfPost(t, target, form, "c0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec", "c0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec")
	r.AddCookie(&http.Cookie{Name: sessionCookie, Value: validToken(t, "s-1")})
	return r
}

// TestConfirmFirst: each destructive or privilege-changing form, posted
// without confirmed=yes, answers a page that names what will happen and
// changes nothing; confirmed, it acts and redirects (post/redirect/get) with
// a notice that says what changed.
func TestConfirmFirst(t *testing.T) {
	users := newFakeUsers()
	users.info.Roles = []string{pauth.RoleUser, pauth.RoleAdmin}
	users.sessions = []*userpb.Session{{Id: "s-1", Current: true}, {Id: "s-2"}, {Id: "s-3"}}
	g := newGateway(t, settings(), users)
	sys := &adminUsers{fakeUsers: users}
	g.Users = sys

	for _, tt := range []struct {
		path, form, says string
		calls            func() int
		location         string
	}{
		{"/admin/users/u-2/delete", "", "The account bob will be deleted", func() int { return sys.deletes }, "/admin/users?done=deleted"},
		{"/admin/users/u-2/disable", "", "bob will be signed out everywhere", func() int { return sys.updates }, "/admin/users/u-2?done=disabled"},
		{"/admin/users/u-2/roles", "role=user&role=admin", "The roles of bob change at once", func() int { return sys.updates }, "/admin/users/u-2?done=roles"},
		{"/account/sessions/others/end", "", "Every other device signed in as you", func() int { return users.count("RevokeSession") }, "/account?done=sessions_ended&ended=2"},
	} {
		t.Run(tt.path, func(t *testing.T) {
			form, _ := url.ParseQuery(tt.form)
			before := tt.calls()
			w := serve(g, signedInPost(t, tt.path, form))
			if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), tt.says) || !strings.Contains(w.Body.String(), `name="confirmed" value="yes"`) {
				t.Fatalf("unconfirmed: %d, want 200 and a page saying %q: %.400s", w.Code, tt.says, w.Body)
			}
			if tt.calls() != before {
				t.Fatalf("the unconfirmed form acted")
			}
			form.Set(confirmField, "yes")
			w = serve(g, signedInPost(t, tt.path, form))
			if w.Code != http.StatusSeeOther || w.Header().Get("Location") != tt.location {
				t.Fatalf("confirmed: %d Location %q, want 303 %s", w.Code, w.Header().Get("Location"), tt.location)
			}
			if tt.calls() == before {
				t.Fatalf("the confirmed form did not act")
			}
		})
	}
}
