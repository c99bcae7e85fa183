package user

// Brute-force defence for Login. Failed logins are counted per account and per
// client address in the service's store; a counter that has reached
// login.maxFailures refuses every login it covers with ErrLocked (429
// user.locked) until it expires, login.lockoutSeconds after the last failure
// it counted. The expiry is the record's own (Record.Expiry), so counters
// vanish by themselves in every store, Redis included.
//
// The counters are read twice: before the password check, so that a locked
// account or address costs no hash (the same for known and unknown names);
// and after it, under a lock, to count a failure or reset the account on a
// success. A lockout reached by concurrent guesses while this password was
// being hashed refuses this attempt too, right password or wrong, so that
// guesses sent in parallel learn no more than maxFailures results.

import (
	"context"
	"encoding/json"
	"errors"
	"hash/fnv"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go-micro.dev/v4/store"

	"github.com/portal-go/portal/internal/config"
	pb "github.com/portal-go/portal/proto/user"
)

// Keys of the failure counters.
const (
	keyFailAcct = "fail/acct/" // fail/acct/<lowercased username> -> failures
	keyFailAddr = "fail/addr/" // fail/addr/<client address> -> failures
)

// failures is a counter's value.
type failures struct {
	Count int `json:"count"`
	// Start is the first failure of the window; the window ends
	// lockoutSeconds after the last one (the record's expiry).
	Start time.Time `json:"start"`
}

// lockedError is ErrLocked with the time left until the lockout ends.
type lockedError struct{ retryAfter time.Duration }

func (e *lockedError) Error() string {
	return ErrLocked.Error() + "; retry after " + strconv.Itoa(e.seconds()) + " s"
}

func (e *lockedError) Unwrap() error { return ErrLocked }

// seconds is the wait in whole seconds, rounded up, at least 1.
func (e *lockedError) seconds() int {
	return max(1, int(math.Ceil(e.retryAfter.Seconds())))
}

// failLocks serialise the read-check-write of counters within this process,
// striped by key. Processes sharing a store (several user instances on one
// Redis) are not serialised: a counter can then lose a concurrent increment,
// never gain one.
var failLocks [64]sync.Mutex

// lockKeys locks the stripes of keys in a fixed order and returns the unlock.
func lockKeys(keys []string) (unlock func()) {
	var idx []int
	for _, k := range keys {
		h := fnv.New32a()
		h.Write([]byte(k))
		if i := int(h.Sum32() % uint32(len(failLocks))); !slices.Contains(idx, i) {
			idx = append(idx, i)
		}
	}
	slices.Sort(idx)
	for _, i := range idx {
		failLocks[i].Lock()
	}
	return func() {
		for _, i := range slices.Backward(idx) {
			failLocks[i].Unlock()
		}
	}
}

// readFailures returns the counter at key (zero when absent) and how long it
// has left; a store that reports no expiry gets lockout.
func (r *Repo) readFailures(ctx context.Context, key string, lockout time.Duration) (failures, time.Duration, error) {
	var f failures
	recs, err := r.store(ctx).Read(key)
	if errors.Is(err, store.ErrNotFound) || (err == nil && len(recs) == 0) {
		return f, 0, nil
	}
	if err != nil {
		return f, 0, storeError("read", err)
	}
	if json.Unmarshal(recs[0].Value, &f) != nil || f.Count < 0 {
		return failures{}, 0, nil // unreadable: start again
	}
	left := recs[0].Expiry
	if left <= 0 {
		left = lockout
	}
	return f, left, nil
}

// loginGuard is one login's failure counters.
type loginGuard struct {
	set config.LoginSettings
	// username and addr as given, cut to size, for the audit log.
	username, addr string
	keys, kinds    []string // counter keys; "account" or "address"
}

// guardLogin names the login's counters and refuses it with a *lockedError
// when one of them has reached the limit. The account counter is kept only
// for well-formed names (known or not), so garbage cannot fill the store; the
// address counter only when the gateway gave an address.
func (h *Handler) guardLogin(ctx context.Context, req *pb.LoginRequest) (*loginGuard, error) {
	g := &loginGuard{set: h.cfg.Current().Login, username: truncate(req.Username, 64), addr: truncate(req.ClientAddr, 64)}
	if ValidUsername(req.Username) == nil {
		g.keys = append(g.keys, keyFailAcct+strings.ToLower(req.Username))
		g.kinds = append(g.kinds, "account")
	}
	if g.addr != "" {
		g.keys = append(g.keys, keyFailAddr+g.addr)
		g.kinds = append(g.kinds, "address")
	}
	_, err := h.readGuard(ctx, g)
	return g, err
}

// readGuard reads g's counters, failing with a *lockedError, which waits for
// the longest lockout, when one has reached the limit.
func (h *Handler) readGuard(ctx context.Context, g *loginGuard) ([]failures, error) {
	lockout := g.set.Lockout()
	fs := make([]failures, len(g.keys))
	var wait time.Duration
	locked := false
	for i, k := range g.keys {
		f, left, err := h.repo.readFailures(ctx, k, lockout)
		if err != nil {
			return nil, err
		}
		if f.Count >= g.set.MaxFailures {
			locked, wait = true, max(wait, left)
		}
		fs[i] = f
	}
	if locked {
		return nil, &lockedError{retryAfter: wait}
	}
	return fs, nil
}

// settleLogin records the outcome of a password check: a failure increments
// every counter (each living lockoutSeconds from now), a success deletes the
// account counter and leaves the address counter alone. When a lockout
// started while the password was being checked, it refuses the login with a
// *lockedError instead, counting nothing. It returns the kinds of counter
// ("account", "address") that this failure made reach the limit: Login
// audits the lockout.
func (h *Handler) settleLogin(ctx context.Context, g *loginGuard, ok bool) (reached []string, err error) {
	if len(g.keys) == 0 {
		return nil, nil
	}
	unlock := lockKeys(g.keys)
	defer unlock()
	fs, err := h.readGuard(ctx, g)
	if err != nil {
		return nil, err
	}
	if ok {
		if g.kinds[0] == "account" {
			if err := h.repo.store(ctx).Delete(g.keys[0]); err != nil {
				return nil, storeError("delete", err)
			}
		}
		return nil, nil
	}
	now := h.now().UTC()
	for i, k := range g.keys {
		f := fs[i]
		if f.Count == 0 {
			f.Start = now
		}
		f.Count++
		if err := h.repo.writeJSON(ctx, k, f, g.set.Lockout()); err != nil {
			return nil, err
		}
		if f.Count == g.set.MaxFailures {
			reached = append(reached, g.kinds[i])
		}
	}
	return reached, nil
}
