package user

import (
	"context"
	"errors"
	"sort"
	"time"

	"go-micro.dev/v4/auth"

	"github.com/portal-go/portal/internal/audit"
	pauth "github.com/portal-go/portal/internal/auth"
	"github.com/portal-go/portal/internal/endpoint"
	pb "github.com/portal-go/portal/proto/user"
)

// seenEvery bounds how often a session's LastSeen is written.
const seenEvery = time.Minute

// ListSessions returns the live sessions of the caller or, for a caller
// with users.read, of req.UserId; newest first.
func (h *Handler) ListSessions(ctx context.Context, req *pb.ListSessionsRequest, rsp *pb.ListSessionsResponse) error {
	acc, err := caller(ctx)
	if err != nil {
		return err
	}
	target, err := subject(ctx, acc, req.UserId)
	if err != nil {
		return err
	}
	rsp.Sessions, err = h.sessions(ctx, target, acc.Metadata[pauth.MetaSession])
	return err
}

// subject is whose data a listing is about: the caller's (userID empty or
// theirs) or, with users.read, another user's.
func subject(ctx context.Context, acc *auth.Account, userID string) (string, error) {
	switch {
	case userID == "" || userID == acc.ID:
		return acc.ID, nil
	case pauth.Can(ctx, endpoint.UsersRead):
		return userID, nil
	}
	return "", rpcError(ErrForbidden)
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

// RevokeSession ends one of the caller's sessions or, with sessions.revoke,
// anyone's. Someone else's session answers as missing to a caller without
// it: its existence is not theirs to learn.
func (h *Handler) RevokeSession(ctx context.Context, req *pb.RevokeSessionRequest, rsp *pb.RevokeSessionResponse) error {
	acc, err := caller(ctx)
	if err != nil {
		return err
	}
	s, err := h.repo.Session(ctx, req.SessionId)
	if errors.Is(err, ErrSessionEnded) || (err == nil && !mayRevoke(ctx, acc, s.UserID)) {
		return rpcError(ErrNoSession)
	} else if err != nil {
		return rpcError(err)
	}
	if err := h.endSession(ctx, s.UserID, s.ID); err != nil {
		return err
	}
	h.record(ctx, acc, audit.KindSessionEnded, s.UserID, h.nameOf(ctx, s.UserID), revokedBy(acc, s.UserID)+"; session "+s.ID)
	return nil
}

// mayRevoke reports whether the caller may end what owner holds (a session,
// an API key): their own, or anyone's with sessions.revoke.
func mayRevoke(ctx context.Context, acc *auth.Account, owner string) bool {
	return owner == acc.ID || pauth.Can(ctx, endpoint.SessionsRevoke)
}

// revokedBy says, for the audit log, who ended what owner held.
func revokedBy(acc *auth.Account, owner string) string {
	if owner == acc.ID {
		return "by its owner"
	}
	return "by an admin"
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
