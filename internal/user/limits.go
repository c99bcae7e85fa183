package user

// Brute-force defence for Login (and the current-password check of
// ChangePassword), built so that it cannot be turned against an account's
// owner: the OWASP device-cookie scheme (device.go).
//
// A login from a trusted device (one that presents a valid device token of
// the account) counts its failures per device only: past login.maxFailures
// the token is locked out and the device is treated as untrusted. A login
// from any other client counts its failures per account and client address
// (limit login.maxFailures), per address over every account
// (login.addressMaxFailures) and per account over every address
// (login.accountMaxFailures, at least ten times login.maxFailures, so that
// only several addresses together reach it). A counter that has reached its
// limit refuses every login it covers with ErrLocked (429 user.locked) until
// it expires, login.lockoutSeconds after the last failure it counted. So an
// attacker at one address locks only that address, for every account, and
// the account from that address; the owner still signs in from any other
// address and, from a trusted device, even from that one or past an
// account-wide lock.
//
// The counters are read twice: before the password check, so that a locked
// login costs no hash (the same for known and unknown names); and after it,
// under a lock, to count a failure or reset on a success. A lockout reached
// by concurrent guesses while this password was being hashed refuses this
// attempt too, right password or wrong, so that guesses sent in parallel
// learn no more than the limit's number of results.
//
// Rate limits (rate.go) bound the attempts that pass these counters.
//
// Every counter's expiry is the record's own (Record.Expiry), so counters
// vanish by themselves in every store, Redis included.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go-micro.dev/v4/store"

	"github.com/portal-go/portal/internal/config"
)

// keyFail prefixes every failure counter.
const keyFail = "fail/"

// noAddr stands for the address of a caller that named none, so that such
// callers share one address's limits rather than escape them.
const noAddr = "unknown"

// counterAddr is the address a client's failures count against: noAddr for
// none, an IPv6 address's /64 network (one host commonly holds a whole /64,
// so each of its addresses is not another client), anything else as given.
func counterAddr(addr string) string {
	if addr == "" {
		return noAddr
	}
	if ip, err := netip.ParseAddr(addr); err == nil && ip.Is6() && !ip.Is4In6() {
		p, _ := ip.WithZone("").Prefix(64)
		return p.String()
	}
	return addr
}

// counterKind is one kind of failure counter.
type counterKind struct {
	// name is the kind's name in the audit log and the admin API.
	name string
	// prefix is its keys' prefix: prefix + key.
	prefix string
	// what says whose failures it counts, for the audit log.
	what string
	// limit is its limit under the settings, and setting the key that sets it.
	limit   func(config.LoginSettings) int
	setting string
}

// The counter kinds.
var (
	kindAccount = &counterKind{name: "account", prefix: keyFail + "acct/", what: "to the account from untrusted devices",
		limit: config.LoginSettings.AccountLimit, setting: "login.accountMaxFailures"}
	kindAccountAddr = &counterKind{name: "account_address", prefix: keyFail + "aa/", what: "to the account from this address",
		limit: maxFailures, setting: "login.maxFailures"}
	kindAddress = &counterKind{name: "address", prefix: keyFail + "addr/", what: "from this address",
		limit: config.LoginSettings.AddressLimit, setting: "login.addressMaxFailures"}
	kindDevice = &counterKind{name: "device", prefix: keyFail + "dev/", what: "from this trusted device",
		limit: maxFailures, setting: "login.maxFailures"}
	counterKinds = []*counterKind{kindAccount, kindAccountAddr, kindAddress, kindDevice}
)

func maxFailures(l config.LoginSettings) int { return l.MaxFailures }

// accountAddrKey is the key of a kindAccountAddr counter.
func accountAddrKey(name, addr string) string { return strings.ToLower(name) + "@" + addr }

// failures is a counter's value.
type failures struct {
	Count int `json:"count"`
	// Username is the name the last failure tried, for admins.
	Username string `json:"username,omitempty"`
	// Start is the first failure of the window; the window ends
	// lockoutSeconds after the last one (the record's expiry).
	Start time.Time `json:"start"`
}

// waitError is ErrLocked or ErrRateLimited with the time left until the
// caller may try again.
type waitError struct {
	cause      error
	retryAfter time.Duration
}

func (e *waitError) Error() string {
	return e.cause.Error() + "; retry after " + strconv.Itoa(e.seconds()) + " s"
}

func (e *waitError) Unwrap() error { return e.cause }

// seconds is the wait in whole seconds, rounded up, at least 1.
func (e *waitError) seconds() int {
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

// counter is one failure counter of a login.
type counter struct {
	kind *counterKind
	key  string // without the kind's prefix
}

func (c counter) storeKey() string { return c.kind.prefix + c.key }

// loginGuard is one login's failure counters.
type loginGuard struct {
	set config.LoginSettings
	// username and addr as given, cut to size, for the audit log.
	username, addr string
	// device is the trusted device's id, "" for an untrusted client.
	device   string
	counters []counter
}

// guardLogin names the counters of a login of name (u: its account, nil when
// unknown) from addr with the device token tok, and refuses it with a
// *waitError when one of them has reached its limit. A valid device token
// of u whose own counter is below its limit makes the login trusted: its
// device counter is then its only one. Otherwise the account counters are
// kept only for well-formed names (known or not), so garbage cannot fill
// the store, and the address counter always (noAddr when the caller named
// no address).
func (h *Handler) guardLogin(ctx context.Context, name, addr, tok string, u *User) (*loginGuard, error) {
	g := &loginGuard{set: h.cfg.Current().Login, username: truncate(name, 64), addr: truncate(addr, 64)}
	if u != nil {
		if dev, ok := h.trustedDevice(tok, u.ID); ok {
			c := counter{kindDevice, dev}
			f, _, err := h.repo.readFailures(ctx, c.storeKey(), g.set.Lockout())
			if err != nil {
				return nil, err
			}
			if f.Count < kindDevice.limit(g.set) {
				g.device, g.counters = dev, []counter{c}
				return g, nil
			}
			// Locked out: this device is untrusted for now.
		}
	}
	a := counterAddr(g.addr)
	if ValidUsername(name) == nil {
		g.counters = append(g.counters, counter{kindAccount, strings.ToLower(name)}, counter{kindAccountAddr, accountAddrKey(name, a)})
	}
	g.counters = append(g.counters, counter{kindAddress, a})
	_, err := h.readGuard(ctx, g)
	return g, err
}

// readGuard reads g's counters, failing with a *waitError, which waits for
// the longest lockout, when one has reached its limit.
func (h *Handler) readGuard(ctx context.Context, g *loginGuard) ([]failures, error) {
	lockout := g.set.Lockout()
	fs := make([]failures, len(g.counters))
	var wait time.Duration
	locked := false
	for i, c := range g.counters {
		f, left, err := h.repo.readFailures(ctx, c.storeKey(), lockout)
		if err != nil {
			return nil, err
		}
		if f.Count >= c.kind.limit(g.set) {
			locked, wait = true, max(wait, left)
		}
		fs[i] = f
	}
	if locked {
		return nil, &waitError{cause: ErrLocked, retryAfter: wait}
	}
	return fs, nil
}

// keys returns the store keys of g's counters.
func (g *loginGuard) keys() []string {
	keys := make([]string, len(g.counters))
	for i, c := range g.counters {
		keys[i] = c.storeKey()
	}
	return keys
}

// settleLogin records the outcome of a password check: a failure increments
// every counter (each living lockoutSeconds from now); a success deletes the
// device's counter, or the account-and-address one, and leaves the others
// alone (an account-wide count reached by an attacker is not the owner's to
// reset by signing in). When a lockout started while the password was being
// checked, it refuses the login with a *waitError instead, counting
// nothing. It returns the counters that this failure made reach their
// limit: the caller audits the lockout.
func (h *Handler) settleLogin(ctx context.Context, g *loginGuard, ok bool) (reached []counter, err error) {
	unlock := lockKeys(g.keys())
	defer unlock()
	fs, err := h.readGuard(ctx, g)
	if err != nil {
		return nil, err
	}
	if ok {
		for _, c := range g.counters {
			if c.kind == kindDevice || c.kind == kindAccountAddr {
				if err := h.repo.store(ctx).Delete(c.storeKey()); err != nil {
					return nil, storeError("delete", err)
				}
			}
		}
		return nil, nil
	}
	now := h.now().UTC()
	for i, c := range g.counters {
		f := fs[i]
		if f.Count == 0 {
			f.Start = now
		}
		f.Count++
		f.Username = g.username
		if err := h.repo.writeJSON(ctx, c.storeKey(), f, g.set.Lockout()); err != nil {
			return nil, err
		}
		if f.Count == c.kind.limit(g.set) {
			reached = append(reached, c)
		}
	}
	return reached, nil
}

// lockoutDetail is the audit detail of counters reaching their limits.
func lockoutDetail(set config.LoginSettings, reached []counter) string {
	var parts []string
	for _, c := range reached {
		parts = append(parts, fmt.Sprintf("failed logins %s reached %s (%d)", c.kind.what, c.kind.setting, c.kind.limit(set)))
	}
	return strings.Join(parts, "; ") + fmt.Sprintf(": logins refused for %d s", set.LockoutSeconds)
}
