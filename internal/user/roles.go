package user

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portal-go/portal/internal/audit"
	pauth "github.com/portal-go/portal/internal/auth"
	"github.com/portal-go/portal/internal/endpoint"
	"github.com/portal-go/portal/internal/kv"
	pb "github.com/portal-go/portal/proto/user"
)

// TopicRoleChanged is the broker topic of pb.RoleChanged events.
const TopicRoleChanged = "role.updated"

// RolesRefresh bounds how stale an instance's roles can be when it missed
// a role.updated event: it reads them all again this often.
const RolesRefresh = 5 * time.Second

// keyRole is role/<name> -> Role.
const keyRole = "role/"

// Role is a named set of permissions, as stored. The built-in roles need no
// record: admin holds every permission whatever is stored, user holds none
// until a record gives it some.
type Role struct {
	Name        string    `json:"name"`
	Permissions []string  `json:"permissions"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// builtin reports whether a role is one of the two every portal has.
func builtin(name string) bool { return name == pauth.RoleAdmin || name == pauth.RoleUser }

var roleName = regexp.MustCompile(`^[a-z][a-z0-9_.-]{1,31}$`)

// cleanPermissions checks permissions against the catalogue and returns them
// sorted, without duplicates.
func cleanPermissions(perms []string) ([]string, error) {
	out := make([]string, 0, len(perms))
	for _, p := range perms {
		if !endpoint.Known(endpoint.Permission(p)) {
			return nil, ErrBadPermissions
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out, nil
}

// ixRoles is the index of the stored roles' names.
const ixRoles = "roles"

// Roles returns every stored role (at most kv.MaxRange), by their index.
func (r *Repo) Roles(ctx context.Context) ([]*Role, error) {
	names, err := r.kv.Members(ixRoles, kv.Range{Limit: kv.MaxRange})
	if err != nil {
		return nil, storeError("list", err)
	}
	if len(names) == 0 {
		return nil, nil
	}
	keys := make([]string, len(names))
	for i, n := range names {
		keys[i] = keyRole + n
	}
	vals, err := r.read(ctx, keys...)
	if err != nil {
		return nil, err
	}
	out := make([]*Role, 0, len(vals))
	for i, v := range vals {
		var role Role
		if err := decodeJSON(keys[i], v, &role); errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile
		} else if err != nil {
			return nil, err
		}
		out = append(out, &role)
	}
	return out, nil
}

// PutRole stores a role and its name in the index, in one step.
func (r *Repo) PutRole(ctx context.Context, role *Role) error {
	data, err := encode(keyRole+role.Name, role)
	if err != nil {
		return err
	}
	_, err = r.apply(kv.PutOp(keyRole+role.Name, data, 0), kv.AddOp(ixRoles, role.Name))
	return err
}

// DeleteRole removes a stored role and its index entry, in one step.
func (r *Repo) DeleteRole(ctx context.Context, name string) error {
	_, err := r.apply(kv.DeleteOp(keyRole+name), kv.RemoveOp(ixRoles, name))
	return err
}

// AllUsers returns every user, by the users index. Only the rare admin
// actions that must look at every account call it (deleting a role, taking
// roles.write from the last enabled admin's peers).
func (r *Repo) AllUsers(ctx context.Context) ([]*User, error) {
	var members []string
	if err := r.eachUserMember(func(m string) { members = append(members, m) }); err != nil {
		return nil, err
	}
	return r.usersOf(ctx, members)
}

// roleSet is an instance's view of the roles: role name -> permissions,
// swapped whole. It is read on every authorised call, so it lives in
// memory: loaded at start, again at once when a role.updated event arrives
// (any instance's change), and every RolesRefresh in case an event was lost.
type roleSet struct {
	defs atomic.Pointer[map[string][]string]
	// load serialises reloads, so that an older read never replaces a
	// newer one.
	load sync.Mutex
}

// reload reads the roles from the store and swaps them in.
func (s *roleSet) reload(ctx context.Context, repo *Repo) error {
	s.load.Lock()
	defer s.load.Unlock()
	roles, err := repo.Roles(ctx)
	if err != nil {
		return err
	}
	defs := map[string][]string{pauth.RoleUser: {}}
	for _, r := range roles {
		defs[r.Name] = r.Permissions
	}
	defs[pauth.RoleAdmin] = endpoint.All()
	s.defs.Store(&defs)
	return nil
}

// current returns the definitions in force: the built-in ones until the
// first load.
func (s *roleSet) current() map[string][]string {
	if d := s.defs.Load(); d != nil {
		return *d
	}
	return map[string][]string{pauth.RoleAdmin: endpoint.All(), pauth.RoleUser: {}}
}

// permissionsOf returns the permissions the roles give under defs, sorted.
func permissionsOf(defs map[string][]string, roles []string) []string {
	var out []string
	for _, r := range roles {
		for _, p := range defs[r] {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	slices.Sort(out)
	return out
}

// LoadRoles reads the roles now; the service calls it before it serves.
func (h *Handler) LoadRoles(ctx context.Context) error { return h.roles.reload(ctx, h.repo) }

// RefreshRoles reloads the roles every RolesRefresh until ctx ends (a
// background job of the service). A failed read keeps the last roles.
func (h *Handler) RefreshRoles(ctx context.Context) {
	t := time.NewTicker(h.refreshEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := h.roles.reload(ctx, h.repo); err != nil {
				h.log.Warn("roles not reloaded; keeping the last ones", "err", err)
			}
		}
	}
}

// OnRoleChanged is the subscriber of role.updated: some instance changed a
// role, so this one reads them again.
func (h *Handler) OnRoleChanged(ctx context.Context, ev *pb.RoleChanged) error {
	return h.roles.reload(ctx, h.repo)
}

// rolesChanged reloads this instance's roles and tells the others.
func (h *Handler) rolesChanged(ctx context.Context, name string) {
	if err := h.roles.reload(ctx, h.repo); err != nil {
		h.log.Warn("roles not reloaded after a change; the next refresh will", "err", err)
	}
	if h.roleEvents == nil {
		return
	}
	ev := &pb.RoleChanged{Name: name, At: h.now().Unix()}
	m := event(TopicRoleChanged, ev)
	if err := h.outbox.Put(m); err != nil {
		h.log.Warn("role.updated event not kept in the outbox", "role", name, "err", err)
	}
	if err := h.announce(ctx, h.roleEvents, m, ev); err != nil {
		h.log.Warn("role.updated event not published now; the outbox relays it (without one, other instances notice at their next refresh)", "role", name, "err", err)
	}
}

// rolePB returns a role for the wire under defs.
func rolePB(defs map[string][]string, name string) *pb.Role {
	return &pb.Role{Name: name, Permissions: endpoint.OrEmpty(defs[name]), Builtin: builtin(name)}
}

// ListPermissions returns the permission catalogue, each with the endpoints
// that need it.
func (h *Handler) ListPermissions(ctx context.Context, req *pb.ListPermissionsRequest, rsp *pb.ListPermissionsResponse) error {
	for _, p := range endpoint.Permissions {
		rsp.Permissions = append(rsp.Permissions, &pb.Permission{
			Name: string(p.Name), Description: p.Description, Endpoints: endpoint.Uses(p.Name),
		})
	}
	return nil
}

// ListRoles returns every role, sorted by name, as the store has them now.
func (h *Handler) ListRoles(ctx context.Context, req *pb.ListRolesRequest, rsp *pb.ListRolesResponse) error {
	if err := h.roles.reload(ctx, h.repo); err != nil {
		return rpcError(err)
	}
	defs := h.roles.current()
	names := make([]string, 0, len(defs))
	for n := range defs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		rsp.Roles = append(rsp.Roles, rolePB(defs, n))
	}
	return nil
}

// GetRole returns one role.
func (h *Handler) GetRole(ctx context.Context, req *pb.GetRoleRequest, rsp *pb.RoleResponse) error {
	if err := h.roles.reload(ctx, h.repo); err != nil {
		return rpcError(err)
	}
	defs := h.roles.current()
	if _, ok := defs[req.Name]; !ok {
		return rpcError(ErrNoRole)
	}
	rsp.Role = rolePB(defs, req.Name)
	return nil
}

// CreateRole makes a role with a set of permissions (possibly empty).
func (h *Handler) CreateRole(ctx context.Context, req *pb.Role, rsp *pb.RoleResponse) error {
	return h.putRole(ctx, req, rsp, true)
}

// UpdateRole replaces a role's permissions. admin cannot be changed; no
// change may leave no enabled account holding roles.write.
func (h *Handler) UpdateRole(ctx context.Context, req *pb.Role, rsp *pb.RoleResponse) error {
	return h.putRole(ctx, req, rsp, false)
}

func (h *Handler) putRole(ctx context.Context, req *pb.Role, rsp *pb.RoleResponse, create bool) error {
	acc, err := caller(ctx)
	if err != nil {
		return err
	}
	if !roleName.MatchString(req.Name) {
		return rpcError(ErrBadRoleName)
	}
	perms, err := cleanPermissions(req.Permissions)
	if err != nil {
		return rpcError(err)
	}
	if req.Name == pauth.RoleAdmin {
		return rpcError(ErrBuiltinRole)
	}
	h.admins.Lock()
	defer h.admins.Unlock()
	if err := h.roles.reload(ctx, h.repo); err != nil {
		return rpcError(err)
	}
	defs := h.roles.current()
	before, exists := defs[req.Name]
	switch {
	case create && exists:
		return rpcError(ErrRoleExists)
	case !create && !exists:
		return rpcError(ErrNoRole)
	}
	after := make(map[string][]string, len(defs))
	for k, v := range defs {
		after[k] = v
	}
	after[req.Name] = perms
	if err := h.keepRolesWriter(ctx, after, "", nil); err != nil {
		return rpcError(err)
	}
	if err := h.repo.PutRole(ctx, &Role{Name: req.Name, Permissions: perms, UpdatedAt: h.now().UTC()}); err != nil {
		return rpcError(err)
	}
	h.rolesChanged(ctx, req.Name)
	kind, detail := audit.KindRoleUpdated, strings.Join(before, ",")+" -> "+strings.Join(perms, ",")
	if create {
		kind, detail = audit.KindRoleCreated, strings.Join(perms, ",")
	}
	h.record(ctx, acc, kind, "", req.Name, detail)
	rsp.Role = rolePB(after, req.Name)
	return nil
}

// DeleteRole removes a role no account holds; the built-in ones stay.
func (h *Handler) DeleteRole(ctx context.Context, req *pb.DeleteRoleRequest, rsp *pb.DeleteRoleResponse) error {
	acc, err := caller(ctx)
	if err != nil {
		return err
	}
	if builtin(req.Name) {
		return rpcError(ErrBuiltinRole)
	}
	h.admins.Lock()
	defer h.admins.Unlock()
	if err := h.roles.reload(ctx, h.repo); err != nil {
		return rpcError(err)
	}
	before, ok := h.roles.current()[req.Name]
	if !ok {
		return rpcError(ErrNoRole)
	}
	users, err := h.repo.AllUsers(ctx)
	if err != nil {
		return rpcError(err)
	}
	for _, u := range users {
		if slices.Contains(u.Roles, req.Name) {
			return rpcError(ErrRoleInUse)
		}
	}
	if err := h.repo.DeleteRole(ctx, req.Name); err != nil {
		return rpcError(err)
	}
	h.rolesChanged(ctx, req.Name)
	h.record(ctx, acc, audit.KindRoleDeleted, "", req.Name, strings.Join(before, ","))
	return nil
}

// keepRolesWriter refuses a change that would leave no enabled account
// holding roles.write: defs are the role definitions after the change,
// subject ("": none) the account it changes, and change (nil: none) gives an
// account as it would be after it (nil: deleted). Callers hold h.admins, which makes the check and the write one
// step within this process; two instances changing the last two holders at
// the same moment could still both pass (the store has no transactions
// across keys).
func (h *Handler) keepRolesWriter(ctx context.Context, defs map[string][]string, subject string, change func(*User) *User) error {
	// admin always holds roles.write: another enabled admin settles it
	// from its index; only without one are the accounts read.
	if another, err := h.repo.AnotherAdmin(ctx, subject); err != nil || another {
		return err
	}
	users, err := h.repo.AllUsers(ctx)
	if err != nil {
		return err
	}
	for _, u := range users {
		if change != nil {
			u = change(u)
		}
		if u != nil && !u.Disabled && slices.Contains(permissionsOf(defs, u.Roles), string(endpoint.RolesWrite)) {
			return nil
		}
	}
	return ErrLastAdmin
}
