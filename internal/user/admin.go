package user

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"time"

	"go-micro.dev/v4/auth"

	"github.com/portal-go/portal/internal/audit"
	pauth "github.com/portal-go/portal/internal/auth"
	pb "github.com/portal-go/portal/proto/user"
)

// TopicUserChanged is the broker topic of pb.UserChanged events.
const TopicUserChanged = "user.updated"

// seenEvery bounds how often a session's LastSeen is written.
const seenEvery = time.Minute

// knownRoles are the roles an account may hold.
var knownRoles = []string{pauth.RoleUser, pauth.RoleAdmin}

// ListSessions returns the live sessions of the caller or, for an admin,
// of req.UserId; newest first.
func (h *Handler) ListSessions(ctx context.Context, req *pb.ListSessionsRequest, rsp *pb.ListSessionsResponse) error {
	acc, err := account(ctx)
	if err != nil {
		return err
	}
	target := req.UserId
	if target == "" {
		target = acc.ID
	}
	if target != acc.ID && !pauth.IsAdmin(acc.Scopes) {
		return rpcError(ErrForbidden)
	}
	rsp.Sessions, err = h.sessions(ctx, target, acc.Metadata[pauth.MetaSession])
	return err
}

// sessions returns a user's live sessions for the wire, newest first,
// marking current.
func (h *Handler) sessions(ctx context.Context, userID, current string) ([]*pb.Session, error) {
	list, err := h.repo.Sessions(ctx, userID)
	if err != nil {
		return nil, rpcError(err)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].CreatedAt.After(list[j].CreatedAt) })
	out := make([]*pb.Session, 0, len(list))
	for _, s := range list {
		out = append(out, sessionPB(s, current))
	}
	return out, nil
}

func sessionPB(s *Session, current string) *pb.Session {
	seen := s.LastSeen
	if seen.IsZero() {
		seen = s.CreatedAt
	}
	return &pb.Session{
		Id: s.ID, UserId: s.UserID, CreatedAt: s.CreatedAt.Unix(), LastSeen: seen.Unix(),
		ExpiresAt: s.ExpiresAt.Unix(), ClientAddr: s.ClientAddr, UserAgent: s.UserAgent,
		Current: s.ID == current,
	}
}

// RevokeSession ends one of the caller's sessions or, for an admin, anyone's.
// Someone else's session answers as missing to a non-admin: its existence is
// not theirs to learn.
func (h *Handler) RevokeSession(ctx context.Context, req *pb.RevokeSessionRequest, rsp *pb.RevokeSessionResponse) error {
	acc, err := account(ctx)
	if err != nil {
		return err
	}
	s, err := h.repo.Session(ctx, req.SessionId)
	if errors.Is(err, ErrSessionEnded) || (err == nil && s.UserID != acc.ID && !pauth.IsAdmin(acc.Scopes)) {
		return rpcError(ErrNoSession)
	} else if err != nil {
		return rpcError(err)
	}
	if err := h.endSession(ctx, s.UserID, s.ID); err != nil {
		return err
	}
	detail := "by its owner"
	if s.UserID != acc.ID {
		detail = "by an admin"
	}
	h.record(ctx, acc, audit.KindSessionEnded, s.UserID, h.nameOf(ctx, s.UserID), detail+"; session "+s.ID)
	return nil
}

// listLimit bounds a page of users.
const (
	defaultLimit = 50
	maxLimit     = 200
)

// ListUsers returns a page of the accounts whose name contains req.Query (no
// case), sorted by name.
func (h *Handler) ListUsers(ctx context.Context, req *pb.ListUsersRequest, rsp *pb.ListUsersResponse) error {
	limit := req.Limit
	if limit <= 0 {
		limit = defaultLimit
	}
	page, total, err := h.repo.UserPage(ctx, strings.ToLower(req.Query), max(int(req.Offset), 0), int(min(limit, maxLimit)))
	if err != nil {
		return rpcError(err)
	}
	for _, u := range page {
		rsp.Users = append(rsp.Users, accountPB(u))
	}
	rsp.Total = int32(total)
	return nil
}

func accountPB(u *User) *pb.Account {
	return &pb.Account{
		Id: u.ID, Username: u.Username, Roles: u.Roles, Disabled: u.Disabled,
		CreatedAt: u.CreatedAt.Unix(), UpdatedAt: u.UpdatedAt.Unix(),
	}
}

// GetUser returns an account and its live sessions.
func (h *Handler) GetUser(ctx context.Context, req *pb.GetUserRequest, rsp *pb.GetUserResponse) error {
	acc, err := account(ctx)
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
// the portal without an enabled admin.
func (h *Handler) UpdateUser(ctx context.Context, req *pb.UpdateUserRequest, rsp *pb.UpdateUserResponse) error {
	acc, err := account(ctx)
	if err != nil {
		return err
	}
	var roles []string
	if req.Roles != nil {
		if roles, err = cleanRoles(req.Roles.Roles); err != nil {
			return rpcError(err)
		}
	}
	h.admins.Lock()
	defer h.admins.Unlock()
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
	if err := h.keepAnAdmin(ctx, &before, u); err != nil {
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
	acc, err := account(ctx)
	if err != nil {
		return err
	}
	h.admins.Lock()
	defer h.admins.Unlock()
	u, err := h.repo.Get(ctx, req.Id)
	if err != nil {
		return rpcError(err)
	}
	if err := h.keepAnAdmin(ctx, u, nil); err != nil {
		return rpcError(err)
	}
	// Sessions first: a user half-deleted still cannot act, since
	// CheckSession refuses a session whose user is gone.
	if rsp.SessionsEnded, err = h.endAll(ctx, u.ID); err != nil {
		return err
	}
	if err := h.repo.Delete(ctx, u); err != nil {
		return rpcError(err)
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

// cleanRoles checks a role set and returns it sorted, without duplicates.
func cleanRoles(roles []string) ([]string, error) {
	out := make([]string, 0, len(roles))
	for _, r := range roles {
		if !slices.Contains(knownRoles, r) {
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

// keepAnAdmin refuses a change from before to after (nil: deletion) that
// takes away the last enabled admin. Callers hold h.admins, which makes the
// check and the write one step within this process; two instances of the
// service demoting the last two admins at the same moment could still both
// pass (the check reads the admins index; the write is another step).
func (h *Handler) keepAnAdmin(ctx context.Context, before, after *User) error {
	wasAdmin := !before.Disabled && pauth.IsAdmin(before.Roles)
	staysAdmin := after != nil && !after.Disabled && pauth.IsAdmin(after.Roles)
	if !wasAdmin || staysAdmin {
		return nil
	}
	another, err := h.repo.AnotherAdmin(ctx, before.ID)
	if err != nil || another {
		return err
	}
	return ErrLastAdmin
}

// endAll ends every session of a user and returns how many.
func (h *Handler) endAll(ctx context.Context, userID string) (int32, error) {
	ids, err := h.repo.SessionIDs(ctx, userID)
	if err != nil {
		return 0, rpcError(err)
	}
	for _, sid := range ids {
		if err := h.endSession(ctx, userID, sid); err != nil {
			return 0, err
		}
	}
	return int32(len(ids)), nil
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
	if err := h.changed.Publish(ctx, ev); err != nil {
		h.log.Warn("user.updated event not published; gateways will notice at cache expiry", "user", userID, "err", err)
	}
}

// nameOf returns a user's name, or "" when it cannot be read (for the audit
// log, which should not fail a request).
func (h *Handler) nameOf(ctx context.Context, id string) string {
	if u, err := h.repo.Get(ctx, id); err == nil {
		return u.Username
	}
	return ""
}

// touch records that a session was used, at most once per seenEvery. A
// failure only costs accuracy of "last seen".
func (h *Handler) touch(ctx context.Context, s *Session) {
	now := h.now().UTC()
	if now.Sub(s.LastSeen) < seenEvery {
		return
	}
	s.LastSeen = now
	if err := h.repo.TouchSession(ctx, s); err != nil && !errors.Is(err, ErrSessionEnded) {
		h.log.Debug("session last-seen not written", "session", s.ID, "err", err)
	}
}

// record publishes an audit entry for an action an account took.
func (h *Handler) record(ctx context.Context, actor *auth.Account, kind audit.Kind, subjectID, subjectName, detail string) {
	h.publishAudit(ctx, audit.Entry{
		Kind: kind, ActorID: actor.ID, ActorName: actor.Metadata[pauth.MetaUsername],
		SubjectID: subjectID, SubjectName: subjectName, Detail: detail,
	})
}
