package user

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"go-micro.dev/v4/store"

	"github.com/portal-go/portal/internal/audit"
	pb "github.com/portal-go/portal/proto/user"
)

// maxListedLockouts bounds the answer of ListLockouts.
const maxListedLockouts = 1000

// ListLockouts returns the failure counters (limits.go) that refuse logins
// now, under the settings in force, by kind and key; at most
// maxListedLockouts. Counters below their limit are not lockouts and are
// not listed.
func (h *Handler) ListLockouts(ctx context.Context, req *pb.ListLockoutsRequest, rsp *pb.ListLockoutsResponse) error {
	set := h.cfg.Current().Login
	keys, err := h.repo.store(ctx).List(store.ListPrefix(keyFail))
	if err != nil {
		return rpcError(storeError("list", err))
	}
	now := h.now()
	for _, k := range keys {
		kind := kindOfKey(k)
		if kind == nil {
			continue
		}
		f, left, err := h.repo.readFailures(ctx, k, set.Lockout())
		if err != nil {
			return rpcError(err)
		}
		if f.Count < kind.limit(set) {
			continue
		}
		rsp.Lockouts = append(rsp.Lockouts, &pb.LockoutEntry{
			Kind: kind.name, Key: strings.TrimPrefix(k, kind.prefix), Failures: int32(f.Count), Until: now.Add(left).Unix(), Username: f.Username,
		})
		if len(rsp.Lockouts) == maxListedLockouts {
			break
		}
	}
	sort.Slice(rsp.Lockouts, func(i, j int) bool {
		a, b := rsp.Lockouts[i], rsp.Lockouts[j]
		return a.Kind < b.Kind || (a.Kind == b.Kind && a.Key < b.Key)
	})
	return nil
}

// LiftLockout deletes one failure counter, so that the logins it refused
// are accepted again. Audited.
func (h *Handler) LiftLockout(ctx context.Context, req *pb.LiftLockoutRequest, rsp *pb.LiftLockoutResponse) error {
	acc, err := account(ctx)
	if err != nil {
		return err
	}
	var kind *counterKind
	for _, k := range counterKinds {
		if k.name == req.Kind {
			kind = k
		}
	}
	if kind == nil || req.Key == "" {
		return rpcError(ErrNoLockout)
	}
	key := kind.prefix + req.Key
	unlock := lockKeys([]string{key})
	defer unlock()
	f, _, err := h.repo.readFailures(ctx, key, 0)
	if err != nil {
		return rpcError(err)
	}
	if f.Count == 0 {
		return rpcError(ErrNoLockout)
	}
	if err := h.repo.store(ctx).Delete(key); err != nil && !errors.Is(err, store.ErrNotFound) {
		return rpcError(storeError("delete", err))
	}
	subjectID, subjectName := "", ""
	if kind == kindAccount || kind == kindAccountAddr {
		subjectName, _, _ = strings.Cut(req.Key, "@")
		if u, err := h.repo.ByName(ctx, subjectName); err == nil {
			subjectID = u.ID
		}
	}
	h.record(ctx, acc, audit.KindLockoutLifted, subjectID, subjectName, fmt.Sprintf("%s %s (%d failures)", kind.name, req.Key, f.Count))
	return nil
}

// kindOfKey is the counter kind of a store key, nil for none.
func kindOfKey(key string) *counterKind {
	for _, k := range counterKinds {
		if strings.HasPrefix(key, k.prefix) {
			return k
		}
	}
	return nil
}
