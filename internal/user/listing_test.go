package user

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go-micro.dev/v4/store"

	pb "github.com/portal-go/portal/proto/user"
)

// countingGetter counts the user records read through it.
type countingGetter struct {
	st    store.Store
	users atomic.Int64
}

func (g *countingGetter) Get(keys ...string) ([][]byte, error) {
	out := make([][]byte, len(keys))
	for i, k := range keys {
		if strings.HasPrefix(k, keyUser) {
			g.users.Add(1)
		}
		recs, err := g.st.Read(k)
		if err == nil && len(recs) > 0 {
			out[i] = recs[0].Value
		}
	}
	return out, nil
}

// listStart is the clock of listHarness: recent, as sessions expire by the
// real clock.
var listStart = time.Now().UTC().Add(-time.Hour).Truncate(time.Minute)

// listHarness has, besides the admin: carol (created first, signed in
// last), dave (disabled, never signed in), erin (locked out), frank
// (email unverified), gina (an admin, signed in first).
func listHarness(t *testing.T) (*harness, context.Context) {
	t.Helper()
	hs := newHarness(t)
	clock := listStart
	hs.h.now = func() time.Time { return clock }
	ctx, _ := hs.adminCtx(t)
	for _, name := range []string{"carol", "dave", "erin", "frank", "gina"} {
		clock = clock.Add(time.Minute)
		hs.register(t, name, alicePW)
	}
	clock = clock.Add(time.Minute)
	hs.login(t, "gina", alicePW)
	clock = clock.Add(time.Minute)
	hs.login(t, "carol", alicePW)
	ids := map[string]string{}
	var all pb.ListUsersResponse
	if err := hs.h.ListUsers(ctx, &pb.ListUsersRequest{}, &all); err != nil {
		t.Fatal(err)
	}
	for _, u := range all.Users {
		ids[u.Username] = u.Id
	}
	yes := true
	if err := hs.h.UpdateUser(ctx, &pb.UpdateUserRequest{Id: ids["dave"], Disabled: &yes}, &pb.UpdateUserResponse{}); err != nil {
		t.Fatal(err)
	}
	if err := hs.h.UpdateUser(ctx, &pb.UpdateUserRequest{Id: ids["gina"], Roles: &pb.Roles{Roles: []string{"admin"}}}, &pb.UpdateUserResponse{}); err != nil {
		t.Fatal(err)
	}
	// From as many addresses: each address's own counter stays low.
	for i := range hs.h.cfg.Current().Login.AccountLimit() {
		addr := fmt.Sprintf("192.0.%d.%d", 2+i/250, 1+i%250)
		_ = hs.h.Login(context.Background(), &pb.LoginRequest{Username: "erin", Password: "wrong-password-1", ClientAddr: addr}, &pb.LoginResponse{})
	}
	u, err := hs.h.repo.Get(ctx, ids["frank"])
	if err != nil {
		t.Fatal(err)
	}
	u.Email = "frank@example.com"
	if err := hs.h.repo.Update(ctx, u); err != nil {
		t.Fatal(err)
	}
	return hs, ctx
}

func usernames(us []*pb.Account) string {
	var out []string
	for _, u := range us {
		out = append(out, u.Username)
	}
	return strings.Join(out, ",")
}

func TestListUsersSortAndFilter(t *testing.T) {
	hs, ctx := listHarness(t)
	day := listStart
	for _, tc := range []struct {
		name string
		req  *pb.ListUsersRequest
		want string
	}{
		{"by name", &pb.ListUsersRequest{}, "admin,carol,dave,erin,frank,gina"},
		{"by name, desc", &pb.ListUsersRequest{Desc: true}, "gina,frank,erin,dave,carol,admin"},
		{"by created", &pb.ListUsersRequest{Sort: "created"}, "admin,carol,dave,erin,frank,gina"},
		{"by created, desc", &pb.ListUsersRequest{Sort: "created", Desc: true}, "gina,frank,erin,dave,carol,admin"},
		// Never signed in counts as earliest; admin signed in at the start.
		{"by last sign-in", &pb.ListUsersRequest{Sort: "last_login"}, "dave,erin,frank,admin,gina,carol"},
		{"by last sign-in, desc", &pb.ListUsersRequest{Sort: "last_login", Desc: true}, "carol,gina,admin,frank,erin,dave"},
		{"role", &pb.ListUsersRequest{Role: "admin"}, "admin,gina"},
		{"disabled", &pb.ListUsersRequest{Status: "disabled"}, "dave"},
		{"locked", &pb.ListUsersRequest{Status: "locked"}, "erin"},
		{"unverified", &pb.ListUsersRequest{Status: "unverified"}, "frank"},
		{"active", &pb.ListUsersRequest{Status: "active", Sort: "created"}, "admin,carol,frank,gina"},
		{"created range, by created", &pb.ListUsersRequest{Sort: "created", CreatedFrom: day.Add(2 * time.Minute).Unix(), CreatedTo: day.Add(4 * time.Minute).Unix()}, "dave,erin"},
		{"created range, by name", &pb.ListUsersRequest{CreatedFrom: day.Add(2 * time.Minute).Unix(), CreatedTo: day.Add(4 * time.Minute).Unix(), Desc: true}, "erin,dave"},
		{"signed in since", &pb.ListUsersRequest{LoginFrom: day.Add(6 * time.Minute).Unix()}, "carol,gina"},
		{"never signed in", &pb.ListUsersRequest{Sort: "last_login", LoginTo: 1}, "dave,erin,frank"},
		{"name and role", &pb.ListUsersRequest{Query: "IN", Role: "admin"}, "admin,gina"},
		{"name, by last sign-in", &pb.ListUsersRequest{Query: "r", Sort: "last_login"}, "erin,frank,carol"},
	} {
		var rsp pb.ListUsersResponse
		if err := hs.h.ListUsers(ctx, tc.req, &rsp); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := usernames(rsp.Users); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
		if int(rsp.Total) != len(rsp.Users) || rsp.Next != "" || rsp.Partial {
			t.Errorf("%s: total %d next %q partial %v for %d users", tc.name, rsp.Total, rsp.Next, rsp.Partial, len(rsp.Users))
		}
	}
	var rsp pb.ListUsersResponse
	if err := hs.h.ListUsers(ctx, &pb.ListUsersRequest{Query: "carol"}, &rsp); err != nil || len(rsp.Users) != 1 {
		t.Fatalf("carol: %v %v", rsp.Users, err)
	}
	if c := rsp.Users[0]; c.LastLoginAt != day.Add(7*time.Minute).Unix() || c.Locked {
		t.Errorf("carol: %+v", c)
	}
	wantRPCError(t, hs.h.ListUsers(ctx, &pb.ListUsersRequest{Sort: "age"}, &pb.ListUsersResponse{}), "user.bad_query", 400)
	wantRPCError(t, hs.h.ListUsers(ctx, &pb.ListUsersRequest{Status: "sleepy"}, &pb.ListUsersResponse{}), "user.bad_query", 400)
	wantRPCError(t, hs.h.ListUsers(ctx, &pb.ListUsersRequest{Cursor: "nonsense"}, &pb.ListUsersResponse{}), "user.bad_query", 400)
}

// Paging by offset and by cursor gives every match once, in order, in
// every sort, with and without a filter on the records.
func TestListUsersPaging(t *testing.T) {
	hs, ctx := listHarness(t)
	for _, sort := range UserSorts {
		for _, desc := range []bool{false, true} {
			for _, status := range []string{"", "active"} {
				var all pb.ListUsersResponse
				if err := hs.h.ListUsers(ctx, &pb.ListUsersRequest{Sort: sort, Desc: desc, Status: status}, &all); err != nil {
					t.Fatal(err)
				}
				var byOffset, byCursor []*pb.Account
				cursor := ""
				for off := int32(0); off < all.Total; off += 2 {
					var p pb.ListUsersResponse
					if err := hs.h.ListUsers(ctx, &pb.ListUsersRequest{Sort: sort, Desc: desc, Status: status, Offset: off, Limit: 2}, &p); err != nil {
						t.Fatal(err)
					}
					byOffset = append(byOffset, p.Users...)
				}
				for i := 0; ; i++ {
					var p pb.ListUsersResponse
					if err := hs.h.ListUsers(ctx, &pb.ListUsersRequest{Sort: sort, Desc: desc, Status: status, Cursor: cursor, Limit: 2}, &p); err != nil {
						t.Fatal(err)
					}
					byCursor = append(byCursor, p.Users...)
					if cursor = p.Next; cursor == "" || i > 10 {
						break
					}
				}
				what := fmt.Sprintf("sort %s desc %v status %q", sort, desc, status)
				if usernames(byOffset) != usernames(all.Users) || usernames(byCursor) != usernames(all.Users) {
					t.Errorf("%s: by offset %s, by cursor %s, want %s", what, usernames(byOffset), usernames(byCursor), usernames(all.Users))
				}
			}
		}
	}
}

// A plain page reads only its own records; a filter on the records reads
// at most maxUserScan of them, says the answer is partial, and its cursor
// goes on from where it stopped.
func TestListUsersBoundedReads(t *testing.T) {
	st := store.NewMemoryStore()
	t.Cleanup(func() { _ = st.Close() })
	g := &countingGetter{st: st}
	hs := newHarnessOn(t, st)
	hs.h.repo.WithGetter(g)
	ctx, _ := hs.adminCtx(t)
	for i := range 40 {
		hs.register(t, fmt.Sprintf("user%02d", i), alicePW)
	}
	g.users.Store(0)
	var rsp pb.ListUsersResponse
	if err := hs.h.ListUsers(ctx, &pb.ListUsersRequest{Sort: "created", Desc: true, Limit: 5}, &rsp); err != nil {
		t.Fatal(err)
	}
	if n := g.users.Load(); n != 5 || rsp.Total != 41 || usernames(rsp.Users) != "user39,user38,user37,user36,user35" {
		t.Errorf("plain page: %d records read; %s of %d", n, usernames(rsp.Users), rsp.Total)
	}

	old := maxUserScan
	maxUserScan = 15
	t.Cleanup(func() { maxUserScan = old })
	var got []string
	cursor, partial := "", 0
	for i := 0; i < 10; i++ {
		g.users.Store(0)
		var p pb.ListUsersResponse
		if err := hs.h.ListUsers(ctx, &pb.ListUsersRequest{Role: "user", Cursor: cursor, Limit: 100}, &p); err != nil {
			t.Fatal(err)
		}
		if n := g.users.Load(); n > 15 {
			t.Fatalf("a filtered page read %d records, over the bound 15", n)
		}
		if p.Partial {
			partial++
		}
		for _, u := range p.Users {
			got = append(got, u.Username)
		}
		if cursor = p.Next; cursor == "" {
			break
		}
	}
	if len(got) != 41 || !slices.IsSorted(got) || partial < 2 {
		t.Errorf("filtered by cursor: %d users (sorted %v), %d partial answers", len(got), slices.IsSorted(got), partial)
	}
}

// Deleting an account takes it out of every index: no sort lists it.
func TestListUsersAfterDelete(t *testing.T) {
	hs, ctx := listHarness(t)
	var all pb.ListUsersResponse
	if err := hs.h.ListUsers(ctx, &pb.ListUsersRequest{Query: "carol"}, &all); err != nil {
		t.Fatal(err)
	}
	if err := hs.h.DeleteUser(ctx, &pb.DeleteUserRequest{Id: all.Users[0].Id}, &pb.DeleteUserResponse{}); err != nil {
		t.Fatal(err)
	}
	for _, s := range UserSorts {
		var rsp pb.ListUsersResponse
		if err := hs.h.ListUsers(ctx, &pb.ListUsersRequest{Sort: s}, &rsp); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(usernames(rsp.Users), "carol") || rsp.Total != 5 {
			t.Errorf("by %s after delete: %s (%d)", s, usernames(rsp.Users), rsp.Total)
		}
	}
}
