package user

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/portal-go/portal/internal/audit"
	pauth "github.com/portal-go/portal/internal/auth"
	"github.com/portal-go/portal/internal/endpoint"
	pb "github.com/portal-go/portal/proto/user"
)

// grantOf is what Check grants a token now.
func (hs *harness) grantOf(t *testing.T, token string) pauth.Grant {
	t.Helper()
	ctx, _ := hs.ctxFor(t, token)
	return pauth.GrantFromContext(ctx)
}

func TestRoles(t *testing.T) {
	hs := newHarness(t)
	adminCtx, _ := hs.adminCtx(t)
	aliceID := hs.register(t, "alice", alicePW)
	alice := hs.login(t, "alice", alicePW).Token

	var got pb.RoleResponse
	if err := hs.h.CreateRole(adminCtx, &pb.Role{Name: "auditor", Permissions: []string{"audit.read", "audit.read"}}, &got); err != nil {
		t.Fatalf("CreateRole: %v", err)
	}
	if got.Role.Name != "auditor" || fmt.Sprint(got.Role.Permissions) != "[audit.read]" || got.Role.Builtin {
		t.Errorf("created %+v", got.Role)
	}
	for _, tc := range []struct {
		role *pb.Role
		id   string
		code int32
	}{
		{&pb.Role{Name: "auditor"}, "user.role_exists", 409},
		{&pb.Role{Name: "Bad Name"}, "user.bad_role_name", 400},
		{&pb.Role{Name: "x", Permissions: nil}, "user.bad_role_name", 400},
		{&pb.Role{Name: "ops", Permissions: []string{"everything"}}, "user.bad_permissions", 400},
		{&pb.Role{Name: "ops", Permissions: []string{"signed_in"}}, "user.bad_permissions", 400},
		{&pb.Role{Name: "admin", Permissions: []string{}}, "user.builtin_role", 409},
	} {
		err := hs.h.CreateRole(adminCtx, tc.role, &pb.RoleResponse{})
		wantRPCError(t, err, tc.id, tc.code)
	}
	wantRPCError(t, hs.h.UpdateRole(adminCtx, &pb.Role{Name: "admin"}, &pb.RoleResponse{}), "user.builtin_role", 409)
	wantRPCError(t, hs.h.UpdateRole(adminCtx, &pb.Role{Name: "nobody"}, &pb.RoleResponse{}), "user.role_not_found", 404)
	wantRPCError(t, hs.h.DeleteRole(adminCtx, &pb.DeleteRoleRequest{Name: "user"}, &pb.DeleteRoleResponse{}), "user.builtin_role", 409)
	wantRPCError(t, hs.h.DeleteRole(adminCtx, &pb.DeleteRoleRequest{Name: "admin"}, &pb.DeleteRoleResponse{}), "user.builtin_role", 409)

	var list pb.ListRolesResponse
	if err := hs.h.ListRoles(adminCtx, &pb.ListRolesRequest{}, &list); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range list.Roles {
		names = append(names, r.Name)
		if r.Name == "admin" && (!r.Builtin || !slices.Equal(r.Permissions, endpoint.All())) {
			t.Errorf("admin %+v, want built-in with every permission", r)
		}
	}
	if fmt.Sprint(names) != "[admin auditor user]" {
		t.Errorf("roles %v", names)
	}

	// Roles given to a user: only existing ones; the grant follows at once,
	// for a role edit too, with no new token.
	err := hs.h.UpdateUser(adminCtx, &pb.UpdateUserRequest{Id: aliceID, Roles: &pb.Roles{Roles: []string{"user", "nobody"}}}, &pb.UpdateUserResponse{})
	wantRPCError(t, err, "user.bad_roles", 400)
	if err := hs.h.UpdateUser(adminCtx, &pb.UpdateUserRequest{Id: aliceID, Roles: &pb.Roles{Roles: []string{"user", "auditor"}}}, &pb.UpdateUserResponse{}); err != nil {
		t.Fatal(err)
	}
	if g := hs.grantOf(t, alice); fmt.Sprint(g.Permissions) != "[audit.read]" {
		t.Errorf("alice's grant %+v, want audit.read", g)
	}
	if err := hs.h.UpdateRole(adminCtx, &pb.Role{Name: "auditor", Permissions: []string{"audit.read", "users.read"}}, &got); err != nil {
		t.Fatal(err)
	}
	if g := hs.grantOf(t, alice); fmt.Sprint(g.Permissions) != "[audit.read users.read]" {
		t.Errorf("alice's grant after the edit %+v", g)
	}
	wantRPCError(t, hs.h.DeleteRole(adminCtx, &pb.DeleteRoleRequest{Name: "auditor"}, &pb.DeleteRoleResponse{}), "user.role_in_use", 409)
	if err := hs.h.UpdateUser(adminCtx, &pb.UpdateUserRequest{Id: aliceID, Roles: &pb.Roles{Roles: []string{"user"}}}, &pb.UpdateUserResponse{}); err != nil {
		t.Fatal(err)
	}
	if g := hs.grantOf(t, alice); len(g.Permissions) != 0 {
		t.Errorf("alice's grant without the role %+v", g)
	}
	if err := hs.h.DeleteRole(adminCtx, &pb.DeleteRoleRequest{Name: "auditor"}, &pb.DeleteRoleResponse{}); err != nil {
		t.Fatal(err)
	}
	wantRPCError(t, hs.h.GetRole(adminCtx, &pb.GetRoleRequest{Name: "auditor"}, &pb.RoleResponse{}), "user.role_not_found", 404)

	// Every change is audited and announced to the other instances.
	for kind, detail := range map[audit.Kind]string{
		audit.KindRoleCreated: "audit.read",
		audit.KindRoleUpdated: "audit.read -> audit.read,users.read",
		audit.KindRoleDeleted: "audit.read,users.read",
	} {
		if e := hs.audit.of(kind); len(e) != 1 || e[0].SubjectName != "auditor" || e[0].Detail != detail || e[0].ActorName != "admin" {
			t.Errorf("%s entries %+v, want one with %q", kind, e, detail)
		}
	}
	var announced []string
	for _, m := range hs.ev.all() {
		if ev, ok := m.(*pb.RoleChanged); ok {
			announced = append(announced, ev.Name)
		}
	}
	if fmt.Sprint(announced) != "[auditor auditor auditor]" {
		t.Errorf("role.updated events %v, want three for auditor", announced)
	}
}

// Another instance on the same store learns a role edit from the event, or,
// when the event is lost, from its periodic reload.
func TestRolesReachOtherInstances(t *testing.T) {
	hs := newHarness(t)
	adminCtx, _ := hs.adminCtx(t)
	other := NewHandler(hs.h.repo, hs.jwt, hs.h.cfg, Events{Revoked: hs.ev, Changed: hs.ev, Roles: hs.ev}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := other.LoadRoles(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := hs.h.CreateRole(adminCtx, &pb.Role{Name: "auditor", Permissions: []string{"audit.read"}}, &pb.RoleResponse{}); err != nil {
		t.Fatal(err)
	}
	if _, ok := other.roles.current()["auditor"]; ok {
		t.Fatalf("the other instance knew the role before any event")
	}
	// It may give the role at once all the same: a change of roles reads
	// the roles first.
	bobID := hs.register(t, "bob", "bob-password-1")
	if err := other.UpdateUser(adminCtx, &pb.UpdateUserRequest{Id: bobID, Roles: &pb.Roles{Roles: []string{"auditor"}}}, &pb.UpdateUserResponse{}); err != nil {
		t.Fatalf("give a role made on another instance: %v", err)
	}
	if err := other.UpdateUser(adminCtx, &pb.UpdateUserRequest{Id: bobID, Roles: &pb.Roles{Roles: []string{"user"}}}, &pb.UpdateUserResponse{}); err != nil {
		t.Fatal(err)
	}
	other.roles.defs.Store(nil) // as before any event
	if err := other.OnRoleChanged(t.Context(), &pb.RoleChanged{Name: "auditor"}); err != nil {
		t.Fatal(err)
	}
	if p := other.roles.current()["auditor"]; fmt.Sprint(p) != "[audit.read]" {
		t.Fatalf("after the event the other instance has %v", p)
	}
	// A lost event: the refresh job reads the roles again.
	if err := hs.h.UpdateRole(adminCtx, &pb.Role{Name: "auditor", Permissions: []string{}}, &pb.RoleResponse{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	other.refreshEvery = 10 * time.Millisecond
	go other.RefreshRoles(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for len(other.roles.current()["auditor"]) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the refresh never picked up the edit")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The last enabled account that may manage roles keeps roles.write: it
// cannot be demoted, disabled or deleted, nor its roles stripped of it.
func TestLastRolesWriter(t *testing.T) {
	hs := newHarness(t)
	adminCtx, adminID := hs.adminCtx(t)
	bobID := hs.register(t, "bob", "bob-password-1")
	if err := hs.h.CreateRole(adminCtx, &pb.Role{Name: "rolekeeper", Permissions: []string{"roles.write", "users.write"}}, &pb.RoleResponse{}); err != nil {
		t.Fatal(err)
	}
	if err := hs.h.UpdateUser(adminCtx, &pb.UpdateUserRequest{Id: bobID, Roles: &pb.Roles{Roles: []string{"rolekeeper"}}}, &pb.UpdateUserResponse{}); err != nil {
		t.Fatal(err)
	}
	// Bob holds roles.write: the admin may step down.
	if err := hs.h.UpdateUser(adminCtx, &pb.UpdateUserRequest{Id: adminID, Roles: &pb.Roles{Roles: []string{"user"}}}, &pb.UpdateUserResponse{}); err != nil {
		t.Fatalf("demote the admin while bob holds roles.write: %v", err)
	}
	bobCtx, _ := hs.ctxFor(t, hs.login(t, "bob", "bob-password-1").Token)
	yes := true
	for name, call := range map[string]func() error{
		"strip the role": func() error {
			return hs.h.UpdateRole(bobCtx, &pb.Role{Name: "rolekeeper", Permissions: []string{"users.write"}}, &pb.RoleResponse{})
		},
		"demote bob": func() error {
			return hs.h.UpdateUser(bobCtx, &pb.UpdateUserRequest{Id: bobID, Roles: &pb.Roles{Roles: []string{"user"}}}, &pb.UpdateUserResponse{})
		},
		"disable bob": func() error {
			return hs.h.UpdateUser(bobCtx, &pb.UpdateUserRequest{Id: bobID, Disabled: &yes}, &pb.UpdateUserResponse{})
		},
		"delete bob": func() error {
			return hs.h.DeleteUser(bobCtx, &pb.DeleteUserRequest{Id: bobID}, &pb.DeleteUserResponse{})
		},
	} {
		t.Run(name, func(t *testing.T) { wantRPCError(t, call(), "user.last_admin", 409) })
	}
	// Given to another, it may go.
	if err := hs.h.UpdateUser(bobCtx, &pb.UpdateUserRequest{Id: adminID, Roles: &pb.Roles{Roles: []string{"admin"}}}, &pb.UpdateUserResponse{}); err != nil {
		t.Fatal(err)
	}
	if err := hs.h.UpdateRole(bobCtx, &pb.Role{Name: "rolekeeper", Permissions: []string{"users.write"}}, &pb.RoleResponse{}); err != nil {
		t.Errorf("strip roles.write with an admin left: %v", err)
	}
}
