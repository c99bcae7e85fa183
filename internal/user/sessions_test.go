package user_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	redisstore "github.com/go-micro/plugins/v4/store/redis"
	goredis "github.com/go-redis/redis/v8"
	"go-micro.dev/v4/store"

	"github.com/portal-go/portal/internal/filestore"
	"github.com/portal-go/portal/internal/kv"
	"github.com/portal-go/portal/internal/testenv"
	"github.com/portal-go/portal/internal/user"
	pb "github.com/portal-go/portal/proto/user"
)

// repoStores runs fn with a store.Store and the repo over it, for every
// store the user service runs on: go-micro's memory store, the file store,
// Redis (the store plugin with kv.Redis on its key space).
func repoStores(t *testing.T, fn func(t *testing.T, st store.Store, repo *user.Repo)) {
	t.Run("memory", func(t *testing.T) {
		st := store.NewMemoryStore()
		t.Cleanup(func() { _ = st.Close() })
		fn(t, st, user.NewRepo(st))
	})
	t.Run("file", func(t *testing.T) {
		fs, err := filestore.New(t.TempDir(), store.Database("user"), store.Table("user"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = fs.Close() })
		fn(t, fs, user.NewRepo(fs).WithKV(fs))
	})
	t.Run("redis", func(t *testing.T) {
		addr := testenv.StartRedis(t).Addr
		st := &noScan{Store: redisstore.NewStore(store.Nodes(addr), store.Table("portal:user:"))}
		cli := goredis.NewClient(&goredis.Options{Addr: addr})
		t.Cleanup(func() { _ = st.Close(); _ = cli.Close() })
		k := kv.NewRedis(cli, "portal:user:", 5*time.Second)
		fn(t, st, user.NewRepo(st).WithKV(k).WithGetter(k))
	})
}

// noScan is the redis store plugin, counting its Lists: each is a SCAN of
// the whole database, which no request may make.
type noScan struct {
	store.Store
	lists atomic.Int32
}

func (s *noScan) List(opts ...store.ListOption) ([]string, error) {
	s.lists.Add(1)
	return s.Store.List(opts...)
}

// wantNoScan fails when st is a noScan that was listed.
func wantNoScan(t *testing.T, st store.Store) {
	t.Helper()
	if s, ok := st.(*noScan); ok && s.lists.Load() > 0 {
		t.Fatalf("%d SCANs of the whole Redis database", s.lists.Load())
	}
}

// TestSessionsStayEnded: a "last seen" write that read its session before a
// logout, a revocation, a password change or a disable ended it does not
// bring the session back, on every store. (It did: the write stored the
// whole record again, and the session worked until sessionMaxAge, in no
// session list.)
func TestSessionsStayEnded(t *testing.T) {
	repoStores(t, func(t *testing.T, st store.Store, repo *user.Repo) {
		hs := user.NewHarnessWith(t, st, repo)
		h := hs.Handler()
		adminCtx := hs.AdminCtx(t)
		for _, c := range []struct {
			name string
			end  func(t *testing.T, own context.Context, userID, sid, other string) error
		}{
			{"logout", func(t *testing.T, own context.Context, _, _, _ string) error {
				return h.Logout(own, &pb.LogoutRequest{}, &pb.LogoutResponse{})
			}},
			{"revoke", func(t *testing.T, own context.Context, _, sid, _ string) error {
				return h.RevokeSession(own, &pb.RevokeSessionRequest{SessionId: sid}, &pb.RevokeSessionResponse{})
			}},
			{"password", func(t *testing.T, _ context.Context, _, _, other string) error {
				ctx := hs.CtxFor(t, other)
				return h.ChangePassword(ctx, &pb.ChangePasswordRequest{OldPassword: user.AlicePW, NewPassword: user.AlicePW + "-new"}, &pb.ChangePasswordResponse{})
			}},
			{"disable", func(t *testing.T, _ context.Context, userID, _, _ string) error {
				yes := true
				return h.UpdateUser(adminCtx, &pb.UpdateUserRequest{Id: userID, Disabled: &yes}, &pb.UpdateUserResponse{})
			}},
		} {
			t.Run(c.name, func(t *testing.T) {
				name := "u-" + c.name
				userID := hs.Register(t, name, user.AlicePW)
				ownToken, ownID := hs.Login(t, name, user.AlicePW)
				other, _ := hs.Login(t, name, user.AlicePW)
				ctx := hs.CtxFor(t, ownToken)
				stale, err := repo.Session(context.Background(), ownID)
				if err != nil {
					t.Fatal(err)
				}
				if err := c.end(t, ctx, userID, ownID, other); err != nil {
					t.Fatalf("ending the session: %v", err)
				}
				// The touch that read the session before it ended writes now.
				stale.LastSeen = stale.LastSeen.Add(-time.Hour)
				h.Touch(context.Background(), stale)
				if _, err := repo.Session(context.Background(), ownID); !errors.Is(err, user.ErrSessionEnded) {
					t.Fatalf("the ended session is back: %v", err)
				}
				ids, err := repo.SessionIDs(context.Background(), userID)
				if err != nil {
					t.Fatal(err)
				}
				for _, id := range ids {
					if id == ownID {
						t.Fatalf("the ended session is listed: %v", ids)
					}
				}
			})
		}
		// The lists a request makes read indexes, never scan.
		var sessions pb.ListSessionsResponse
		if err := h.ListSessions(adminCtx, &pb.ListSessionsRequest{}, &sessions); err != nil || len(sessions.Sessions) != 1 {
			t.Fatalf("ListSessions = %v, %v", sessions.Sessions, err)
		}
		var users pb.ListUsersResponse
		if err := h.ListUsers(adminCtx, &pb.ListUsersRequest{Query: "u-"}, &users); err != nil || users.Total != 4 {
			t.Fatalf("ListUsers = %v (%d), %v; want the 4 users", users.Users, users.Total, err)
		}
		wantNoScan(t, st)
	})
}

// TestTouchRacesRevoke races many touches against the revocation of the
// session they touch: once revoked, it stays revoked, and it leaves both
// indexes.
func TestTouchRacesRevoke(t *testing.T) {
	repoStores(t, func(t *testing.T, st store.Store, repo *user.Repo) {
		ctx := context.Background()
		for round := range 10 {
			s := &user.Session{ID: fmt.Sprint("s", round), UserID: "u1", CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
			if err := repo.CreateSession(ctx, s); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			done := make(chan struct{})
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ; i++ {
						cp := *s
						cp.LastSeen = time.Now()
						if err := repo.TouchSession(ctx, &cp); err != nil && !errors.Is(err, user.ErrSessionEnded) {
							t.Error(err)
							return
						}
						select {
						case <-done:
							if i > 2 {
								return
							}
						default:
						}
					}
				}()
			}
			if err := repo.DeleteSession(ctx, "u1", s.ID); err != nil {
				t.Fatal(err)
			}
			close(done)
			wg.Wait()
			if _, err := repo.Session(ctx, s.ID); !errors.Is(err, user.ErrSessionEnded) {
				t.Fatalf("round %d: revoked session is back: %v", round, err)
			}
		}
		if ids, err := repo.SessionIDs(ctx, "u1"); err != nil || len(ids) != 0 {
			t.Fatalf("SessionIDs = %v, %v; want none", ids, err)
		}
		if n, err := repo.CountSessions(ctx); err != nil || n != 0 {
			t.Fatalf("CountSessions = %d, %v; want 0", n, err)
		}
		wantNoScan(t, st)
	})
}

// TestReindex: users and sessions written without indexes (by an earlier
// version) are listed after Reindex, which runs once per store.
func TestReindex(t *testing.T) {
	repoStores(t, func(t *testing.T, st store.Store, repo *user.Repo) {
		ctx := context.Background()
		end := time.Now().Add(time.Hour).UTC()
		for k, v := range map[string]string{
			"user/id-old":     `{"id":"id-old","username":"Old","roles":["user"]}`,
			"name/old":        "id-old",
			"session/s-old":   fmt.Sprintf(`{"id":"s-old","user_id":"id-old","expires_at":%q}`, end.Format(time.RFC3339Nano)),
			"usess/id-old/s1": `""`,
		} {
			if err := st.Write(&store.Record{Key: k, Value: []byte(v)}); err != nil {
				t.Fatal(err)
			}
		}
		if l, err := repo.ListUsers(ctx, user.UserQuery{Limit: 10}); err != nil || len(l.Users) != 0 {
			t.Fatalf("before: %d users, %v", len(l.Users), err)
		}
		if n, err := repo.Reindex(ctx); err != nil || n != 2 {
			t.Fatalf("Reindex = %d, %v; want 2", n, err)
		}
		for _, sort := range user.UserSorts {
			l, err := repo.ListUsers(ctx, user.UserQuery{Sort: sort, Limit: 10, Total: true})
			if err != nil || l.Total != 1 || len(l.Users) != 1 || l.Users[0].ID != "id-old" {
				t.Fatalf("after, by %s: %+v, %v", sort, l, err)
			}
		}
		if users, admins, disabled, err := repo.UserCounts(ctx); err != nil || users != 1 || admins != 0 || disabled != 0 {
			t.Fatalf("UserCounts = %d, %d, %d, %v", users, admins, disabled, err)
		}
		if ids, err := repo.SessionIDs(ctx, "id-old"); err != nil || len(ids) != 1 || ids[0] != "s-old" {
			t.Fatalf("sessions: %v, %v", ids, err)
		}
		if n, err := repo.Reindex(ctx); err != nil || n != 0 {
			t.Fatalf("Reindex again = %d, %v; want 0", n, err)
		}
	})
}

// TestRoleIndexes: the overview's counts and the last-admin check read the
// admins and disabled indexes, which every write of a user keeps true.
func TestRoleIndexes(t *testing.T) {
	repoStores(t, func(t *testing.T, st store.Store, repo *user.Repo) {
		ctx := context.Background()
		a := &user.User{ID: "id-a", Username: "ada", Roles: []string{"admin", "user"}}
		b := &user.User{ID: "id-b", Username: "bea", Roles: []string{"user"}}
		for _, u := range []*user.User{a, b} {
			if err := repo.Create(ctx, u); err != nil {
				t.Fatal(err)
			}
		}
		counts := func(want [3]int) {
			t.Helper()
			u, ad, d, err := repo.UserCounts(ctx)
			if err != nil || [3]int{u, ad, d} != want {
				t.Fatalf("UserCounts = %d, %d, %d, %v; want %v", u, ad, d, err, want)
			}
		}
		another := func(id string, want bool) {
			t.Helper()
			if got, err := repo.AnotherAdmin(ctx, id); err != nil || got != want {
				t.Fatalf("AnotherAdmin(%s) = %v, %v; want %v", id, got, err, want)
			}
		}
		counts([3]int{2, 1, 0})
		another("id-a", false)
		another("id-b", true)
		b.Roles = []string{"admin", "user"}
		if err := repo.Update(ctx, b); err != nil {
			t.Fatal(err)
		}
		counts([3]int{2, 2, 0})
		another("id-a", true)
		a.Disabled = true // a disabled admin is no admin
		if err := repo.Update(ctx, a); err != nil {
			t.Fatal(err)
		}
		counts([3]int{2, 1, 1})
		another("id-b", false)
		if err := repo.Delete(ctx, a); err != nil {
			t.Fatal(err)
		}
		counts([3]int{1, 1, 0})
		// An update of a deleted user does not bring it back.
		if err := repo.Update(ctx, a); !errors.Is(err, user.ErrNotFound) {
			t.Fatalf("Update(deleted) = %v, want ErrNotFound", err)
		}
		counts([3]int{1, 1, 0})
		wantNoScan(t, st)
	})
}
