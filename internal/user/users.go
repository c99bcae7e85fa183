package user

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/portal-go/portal/internal/audit"
	pauth "github.com/portal-go/portal/internal/auth"
	pb "github.com/portal-go/portal/proto/user"
)

// TopicUserChanged is the broker topic of pb.UserChanged events.
const TopicUserChanged = "user.updated"

// A page of users: defaultLimit when the request names none, at most
// maxLimit.
const (
	defaultLimit = 50
	maxLimit     = 200
)

// ListUsers returns a page of the accounts that match the request's
// filters (a name part, a role, a status, creation and last sign-in
// ranges), in its order (listing.go says what each costs). The first page
// of an export is audited.
func (h *Handler) ListUsers(ctx context.Context, req *pb.ListUsersRequest, rsp *pb.ListUsersResponse) error {
	q, err := h.userQuery(req)
	if err != nil {
		return rpcError(err)
	}
	if req.Export && req.Cursor == "" {
		acc, err := caller(ctx)
		if err != nil {
			return err
		}
		h.record(ctx, acc, audit.KindExport, "", "users", "users as CSV: "+q.String())
	}
	list, err := h.repo.ListUsers(ctx, q)
	if err != nil {
		return rpcError(err)
	}
	limit := h.cfg.Current().Login.AccountLimit()
	for _, l := range list.Users {
		a := accountPB(l.User)
		a.LastLoginAt, a.Locked = unix(l.LastLogin), l.Failures >= limit
		rsp.Users = append(rsp.Users, a)
	}
	rsp.Total, rsp.Next, rsp.Partial = int32(list.Total), list.Next, list.Partial
	return nil
}

// userQuery is the repo's query for a ListUsers request.
func (h *Handler) userQuery(req *pb.ListUsersRequest) (UserQuery, error) {
	limit := req.Limit
	if limit <= 0 {
		limit = defaultLimit
	}
	q := UserQuery{
		Name: strings.ToLower(req.Query), Sort: req.Sort, Desc: req.Desc,
		CreatedFrom: fromUnix(req.CreatedFrom), CreatedTo: fromUnix(req.CreatedTo),
		LoginFrom: fromUnix(req.LoginFrom), LoginTo: fromUnix(req.LoginTo),
		Offset: max(int(req.Offset), 0), Limit: int(min(limit, maxLimit)), Cursor: req.Cursor, Total: req.Cursor == "",
	}
	if q.Sort != "" && !slices.Contains(UserSorts, q.Sort) || req.Status != "" && !slices.Contains(UserStatuses, req.Status) {
		return q, ErrBadQuery
	}
	accountLimit := h.cfg.Current().Login.AccountLimit()
	role, status := req.Role, req.Status
	q.Failures = status == "active" || status == "locked"
	if role != "" || status != "" {
		q.Keep = func(l Listed) bool {
			if role != "" && !slices.Contains(l.Roles, role) {
				return false
			}
			switch status {
			case "active":
				return !l.Disabled && l.Failures < accountLimit
			case "disabled":
				return l.Disabled
			case "locked":
				return l.Failures >= accountLimit
			case "unverified":
				return l.Email != "" && !l.EmailVerified
			}
			return true
		}
	}
	return q, nil
}

// fromUnix is unix seconds as a time, zero for 0.
func fromUnix(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

// unix is t in unix seconds, 0 for the zero time.
func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func accountPB(u *User) *pb.Account {
	return &pb.Account{
		Id: u.ID, Username: u.Username, Roles: u.Roles, Disabled: u.Disabled,
		CreatedAt: u.CreatedAt.Unix(), UpdatedAt: u.UpdatedAt.Unix(),
		Email: u.Email, EmailVerified: u.EmailVerified, DisplayName: u.DisplayName,
	}
}

// GetUser returns an account and its live sessions.
func (h *Handler) GetUser(ctx context.Context, req *pb.GetUserRequest, rsp *pb.GetUserResponse) error {
	acc, err := caller(ctx)
	if err != nil {
		return err
	}
	u, err := h.repo.Get(ctx, req.Id)
	if err != nil {
		return rpcError(err)
	}
	rsp.User = accountPB(u)
	rsp.Sessions, err = h.sessions(ctx, u.ID, acc.Metadata[pauth.MetaSession])
	return err
}

// UpdateUser replaces an account's roles and/or disables or enables it.
// Disabling ends every session of the account at once; a change of roles
// tells the gateways to drop what they cached about its sessions (services
// check the roles in the store, not those in a token). No change may leave
// the portal without an enabled account holding roles.write.
func (h *Handler) UpdateUser(ctx context.Context, req *pb.UpdateUserRequest, rsp *pb.UpdateUserResponse) error {
	acc, err := caller(ctx)
	if err != nil {
		return err
	}
	h.admins.Lock()
	defer h.admins.Unlock()
	// The roles as the store has them now: one made on another instance a
	// moment ago may be given at once.
	if err := h.roles.reload(ctx, h.repo); err != nil {
		return rpcError(err)
	}
	var roles []string
	if req.Roles != nil {
		if roles, err = cleanRoles(h.roles.current(), req.Roles.Roles); err != nil {
			return rpcError(err)
		}
	}
	u, err := h.repo.Get(ctx, req.Id)
	if err != nil {
		return rpcError(err)
	}
	before := *u
	if roles != nil {
		u.Roles = roles
	}
	if req.Disabled != nil {
		u.Disabled = *req.Disabled
	}
	if err := h.keepRolesWriter(ctx, h.roles.current(), u.ID, replacing(u)); err != nil {
		return rpcError(err)
	}
	rolesChanged := !slices.Equal(before.Roles, u.Roles)
	if !rolesChanged && before.Disabled == u.Disabled {
		rsp.User = accountPB(u)
		return nil
	}
	u.UpdatedAt = h.now().UTC()
	if err := h.repo.Update(ctx, u); err != nil {
		return rpcError(err)
	}
	rsp.User = accountPB(u)
	if rolesChanged {
		h.record(ctx, acc, audit.KindRoleChange, u.ID, u.Username, strings.Join(before.Roles, ",")+" -> "+strings.Join(u.Roles, ","))
		h.publishChanged(ctx, u.ID)
	}
	switch {
	case u.Disabled && !before.Disabled:
		h.record(ctx, acc, audit.KindDisable, u.ID, u.Username, "")
		if rsp.SessionsEnded, err = h.endAll(ctx, u.ID); err != nil {
			return err
		}
	case !u.Disabled && before.Disabled:
		h.record(ctx, acc, audit.KindEnable, u.ID, u.Username, "")
	}
	return nil
}

// DeleteUser removes an account and ends its sessions.
func (h *Handler) DeleteUser(ctx context.Context, req *pb.DeleteUserRequest, rsp *pb.DeleteUserResponse) error {
	acc, err := caller(ctx)
	if err != nil {
		return err
	}
	h.admins.Lock()
	defer h.admins.Unlock()
	u, err := h.repo.Get(ctx, req.Id)
	if err != nil {
		return rpcError(err)
	}
	if err := h.keepRolesWriter(ctx, h.roles.current(), u.ID, replacing(&User{ID: u.ID, Disabled: true})); err != nil {
		return rpcError(err)
	}
	// Sessions first: a user half-deleted still cannot act, since
	// Check refuses a session whose user is gone.
	if rsp.SessionsEnded, err = h.endAll(ctx, u.ID); err != nil {
		return err
	}
	if err := h.repo.Delete(ctx, u); err != nil {
		return rpcError(err)
	}
	// Its API keys are refused already (their owner is gone): drop them.
	if keys, err := h.repo.Tokens(ctx, u.ID); err == nil {
		for _, k := range keys {
			_ = h.repo.DeleteToken(ctx, k)
		}
	}
	h.record(ctx, acc, audit.KindDelete, u.ID, u.Username, "")
	return nil
}

// Stats counts accounts and live sessions.
func (h *Handler) Stats(ctx context.Context, req *pb.StatsRequest, rsp *pb.StatsResponse) error {
	users, admins, disabled, err := h.repo.UserCounts(ctx)
	if err != nil {
		return rpcError(err)
	}
	rsp.Users, rsp.Admins, rsp.DisabledUsers = int32(users), int32(admins), int32(disabled)
	n, err := h.repo.CountSessions(ctx)
	if err != nil {
		return rpcError(err)
	}
	rsp.ActiveSessions = int32(n)
	return nil
}

// cleanRoles checks a role set against the roles defined (defs) and
// returns it sorted, without duplicates.
func cleanRoles(defs map[string][]string, roles []string) ([]string, error) {
	out := make([]string, 0, len(roles))
	for _, r := range roles {
		if _, ok := defs[r]; !ok {
			return nil, ErrBadRoles
		}
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return nil, ErrBadRoles
	}
	slices.Sort(out)
	return out, nil
}

// replacing is a change for keepRolesWriter: the account with after's id
// becomes after.
func replacing(after *User) func(*User) *User {
	return func(u *User) *User {
		if u.ID == after.ID {
			return after
		}
		return u
	}
}

// publishChanged tells gateways that a user's roles changed, naming the
// sessions whose cached view is now stale.
func (h *Handler) publishChanged(ctx context.Context, userID string) {
	ids, err := h.repo.SessionIDs(ctx, userID)
	if err != nil {
		h.log.Warn("user.updated event not sent: sessions unreadable; gateways will notice at cache expiry", "user", userID, "err", err)
		return
	}
	ev := &pb.UserChanged{UserId: userID, SessionIds: ids, At: h.now().Unix()}
	m := event(TopicUserChanged, ev)
	if err := h.outbox.Put(m); err != nil {
		h.log.Warn("user.updated event not kept in the outbox", "user", userID, "err", err)
	}
	if err := h.announce(ctx, h.changed, m, ev); err != nil {
		h.log.Warn("user.updated event not published now; the outbox relays it (without one, gateways notice at cache expiry)", "user", userID, "err", err)
	}
}
