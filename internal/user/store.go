package user

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go-micro.dev/v4/store"

	pauth "github.com/portal-go/portal/internal/auth"
	"github.com/portal-go/portal/internal/kv"
)

// Keys in the user service's table. Secondary indexes are just extra keys.
const (
	keyUser    = "user/"    // user/<id> -> User
	keyName    = "name/"    // name/<lowercased username> -> id
	keySession = "session/" // session/<id> -> Session
	// keyBootstrap records that this store had its first admin made.
	keyBootstrap = "bootstrap/admin" // -> the time, RFC 3339
)

// Indexes (kv.Store), kept in the same atomic step as the records they list.
const (
	ixUsers        = "users"    // "<lowercased name> <id>" of every user
	ixAdmins       = "admins"   // the same, of enabled admins
	ixDisabled     = "disabled" // the same, of disabled users
	ixSessions     = "sessions" // "<end position> <session id>" of every session
	ixUserSessions = "usess/"   // usess/<user id>: "<end position> <session id>"
)

// storeError marks a failure of the store itself (not a missing record): it
// crosses RPC as 503 user.unavailable, so clients are told to retry.
func storeError(op string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrStoreUnavailable, op, err)
}

// Repo keeps users and sessions in a go-micro store.
type Repo struct {
	st store.Store
	// kv writes records with their indexes in one atomic step, each write
	// conditional where it must be, and reads indexes.
	kv kv.Store
	// getter, when set, reads users and sessions.
	getter Getter
}

// Getter reads the values at several keys of the repo's table in one round
// trip (Redis MGET), nil for an absent key. The redis store plugin reads one
// key per call and sends two commands for it (GET, then TTL for the
// record's expiry, which users and sessions do not need): an authenticated
// call would cost eight round trips to Redis instead of two.
type Getter interface {
	Get(keys ...string) ([][]byte, error)
}

// WithGetter makes reads of users and sessions go through g.
func (r *Repo) WithGetter(g Getter) *Repo {
	r.getter = g
	return r
}

// WithKV makes every write go through k, a kv.Store over the same records
// as the repo's store.Store (the file store, Redis): atomic for every
// process sharing the store. Without it the repo uses kv.NewLocal, atomic
// within this process only.
func (r *Repo) WithKV(k kv.Store) *Repo {
	r.kv = k
	return r
}

// NewRepo wraps st. When st can bind a request's context to its operations
// (platform.TracedStore: each becomes a span of the request's trace), every
// method binds the context it is given.
func NewRepo(st store.Store) *Repo { return &Repo{st: st, kv: kv.NewLocal(st)} }

// contextStore is a store.Store that can bind a context to its operations.
type contextStore interface {
	WithContext(ctx context.Context) store.Store
}

// store is the repo's store bound to ctx, when it can be.
func (r *Repo) store(ctx context.Context) store.Store {
	if cs, ok := r.st.(contextStore); ok {
		return cs.WithContext(ctx)
	}
	return r.st
}

func nameKey(username string) string { return keyName + strings.ToLower(username) }

// readJSON decodes the record at key into v.
func (r *Repo) readJSON(ctx context.Context, key string, v any) error {
	vals, err := r.read(ctx, key)
	if err != nil {
		return err
	}
	return decodeJSON(key, vals[0], v)
}

// read returns the values at keys, nil for an absent one: in one round trip
// with a Getter, else a store read for each (bound to ctx, so traced).
func (r *Repo) read(ctx context.Context, keys ...string) ([][]byte, error) {
	if r.getter != nil {
		vals, err := r.getter.Get(keys...)
		if err != nil {
			return nil, storeError("read", err)
		}
		if len(vals) != len(keys) {
			return nil, storeError("read", fmt.Errorf("%d values for %d keys", len(vals), len(keys)))
		}
		return vals, nil
	}
	vals := make([][]byte, len(keys))
	for i, key := range keys {
		recs, err := r.store(ctx).Read(key)
		if errors.Is(err, store.ErrNotFound) || (err == nil && len(recs) == 0) {
			continue
		}
		if err != nil {
			return nil, storeError("read", err)
		}
		vals[i] = recs[0].Value
	}
	return vals, nil
}

// decodeJSON decodes the value read at key into v; nil is ErrNotFound.
func decodeJSON(key string, val []byte, v any) error {
	if val == nil {
		return ErrNotFound
	}
	if err := json.Unmarshal(val, v); err != nil {
		return fmt.Errorf("user: decode %s: %w", key, err)
	}
	return nil
}

// encode is v as JSON.
func encode(key string, v any) ([]byte, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("user: encode %s: %w", key, err)
	}
	return data, nil
}

// apply runs ops as one atomic step and reports whether their conditions
// held.
func (r *Repo) apply(ops ...kv.Op) (bool, error) {
	ok, err := r.kv.Apply(ops...)
	if err != nil {
		return false, storeError("write", err)
	}
	return ok, nil
}

// userMember is u's member of the users index: sorted by name.
func userMember(u *User) string { return strings.ToLower(u.Username) + " " + u.ID }

// roleOps keep u in the admins or disabled index as its record says: out of
// both, then into the one that holds.
func roleOps(u *User) []kv.Op {
	m := userMember(u)
	ops := []kv.Op{kv.RemoveOp(ixAdmins, m), kv.RemoveOp(ixDisabled, m)}
	switch {
	case u.Disabled:
		ops = append(ops, kv.AddOp(ixDisabled, m))
	case pauth.IsAdmin(u.Roles):
		ops = append(ops, kv.AddOp(ixAdmins, m))
	}
	return ops
}

// sessionMember is s's member of the session indexes: sorted by end, so
// that the ended ones are trimmed off the front.
func sessionMember(s *Session) string { return endPosition(s.ExpiresAt) + " " + s.ID }

// endPosition is t as a member prefix that sorts as times do.
func endPosition(t time.Time) string { return fmt.Sprintf("%019d", t.UnixNano()) }

// Create stores a new user, failing with ErrExists when the name (compared
// without case) is taken. The name's claim, the record and the users index
// entry are one atomic step, and the claim names the account: a claim that
// a timeout made the client send twice recognises its own value, so a slow
// store cannot burn a name. A claim whose account record is missing (left
// by an earlier version, which wrote them apart) is an orphan: Create takes
// it back.
func (r *Repo) Create(ctx context.Context, u *User) error {
	data, err := encode(keyUser+u.ID, u)
	if err != nil {
		return err
	}
	claim := func() (bool, error) {
		return r.apply(append([]kv.Op{
			kv.PutOp(nameKey(u.Username), []byte(u.ID), 0).When(kv.AbsentOrSame),
			kv.PutOp(keyUser+u.ID, data, 0),
			kv.AddOp(ixUsers, userMember(u)),
		}, append(roleOps(u), listOps(u)...)...)...)
	}
	won, err := claim()
	if err != nil || won {
		return err
	}
	if orphan, err := r.dropOrphanClaim(ctx, u.Username); err != nil || !orphan {
		if err == nil {
			err = ErrExists
		}
		return err
	}
	if won, err = claim(); err == nil && !won {
		err = ErrExists
	}
	return err
}

// dropOrphanClaim deletes the claim on username when its account record is
// missing, and reports whether it did.
func (r *Repo) dropOrphanClaim(ctx context.Context, username string) (bool, error) {
	id, err := r.idByName(ctx, username)
	if errors.Is(err, ErrNotFound) {
		return true, nil // gone meanwhile: claim again
	} else if err != nil {
		return false, err
	}
	vals, err := r.read(ctx, keyUser+id)
	if err != nil || vals[0] != nil {
		return false, err
	}
	// Only if the claim still names the missing account.
	if _, err := r.apply(kv.DeleteOp(nameKey(username)).WhenEqual([]byte(id)), kv.CheckOp(keyUser+id, kv.Absent)); err != nil {
		return false, err
	}
	return true, nil
}

// Update replaces a user's record (its name does not change), if the user
// still exists: an update racing a deletion does not bring the user back.
func (r *Repo) Update(ctx context.Context, u *User) error {
	data, err := encode(keyUser+u.ID, u)
	if err != nil {
		return err
	}
	ok, err := r.apply(append([]kv.Op{kv.PutOp(keyUser+u.ID, data, 0).When(kv.Exists)}, roleOps(u)...)...)
	if err == nil && !ok {
		err = ErrNotFound
	}
	return err
}

// Get returns the user with the id.
func (r *Repo) Get(ctx context.Context, id string) (*User, error) {
	var u User
	if err := r.readJSON(ctx, keyUser+id, &u); err != nil {
		return nil, err
	}
	return &u, nil
}

func (r *Repo) idByName(ctx context.Context, username string) (string, error) {
	recs, err := r.store(ctx).Read(nameKey(username))
	if errors.Is(err, store.ErrNotFound) || (err == nil && len(recs) == 0) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", storeError("read", err)
	}
	return string(recs[0].Value), nil
}

// ByName returns the user with the name, compared without case.
func (r *Repo) ByName(ctx context.Context, username string) (*User, error) {
	id, err := r.idByName(ctx, username)
	if err != nil {
		return nil, err
	}
	return r.Get(ctx, id)
}

// CreateSession stores s until its end, in its user's index and the index
// of all sessions (both trimmed of ended sessions in the same step).
func (r *Repo) CreateSession(ctx context.Context, s *Session) error {
	ttl := time.Until(s.ExpiresAt)
	if ttl <= 0 {
		return ErrSessionEnded
	}
	data, err := encode(keySession+s.ID, s)
	if err != nil {
		return err
	}
	now, m := endPosition(time.Now()), sessionMember(s)
	_, err = r.apply(
		kv.PutOp(keySession+s.ID, data, ttl),
		kv.AddOp(ixUserSessions+s.UserID, m), kv.TrimOp(ixUserSessions+s.UserID, now),
		kv.AddOp(ixSessions, m), kv.TrimOp(ixSessions, now),
	)
	return err
}

// Session returns a live session.
func (r *Repo) Session(ctx context.Context, id string) (*Session, error) {
	var s Session
	if err := r.readJSON(ctx, keySession+id, &s); errors.Is(err, ErrNotFound) {
		return nil, ErrSessionEnded
	} else if err != nil {
		return nil, err
	}
	return &s, nil
}

// SessionAndUser returns a live session and the user with userID, read
// together (one round trip with a Getter). A missing user is ErrNotFound,
// checked first; a missing session ErrSessionEnded. It does not check that
// the session is the user's.
func (r *Repo) SessionAndUser(ctx context.Context, sid, userID string) (*Session, *User, error) {
	sk, uk := keySession+sid, keyUser+userID
	vals, err := r.read(ctx, sk, uk)
	if err != nil {
		return nil, nil, err
	}
	var u User
	if err := decodeJSON(uk, vals[1], &u); err != nil {
		return nil, nil, err
	}
	var s Session
	if err := decodeJSON(sk, vals[0], &s); errors.Is(err, ErrNotFound) {
		return nil, nil, ErrSessionEnded
	} else if err != nil {
		return nil, nil, err
	}
	return &s, &u, nil
}

// DeleteSession ends a session: the record and its index entries in one
// step, with the ops of with (the event that reports it). Ending an ended
// session is not an error.
func (r *Repo) DeleteSession(ctx context.Context, userID, id string, with ...kv.Op) error {
	s, err := r.Session(ctx, id)
	if errors.Is(err, ErrSessionEnded) {
		_, err = r.apply(append([]kv.Op{kv.DeleteOp(keySession + id)}, with...)...)
		return err
	} else if err != nil {
		return err
	}
	m := sessionMember(s)
	_, err = r.apply(append([]kv.Op{kv.DeleteOp(keySession + id), kv.RemoveOp(ixUserSessions+userID, m), kv.RemoveOp(ixSessions, m)}, with...)...)
	return err
}

// maxSessions bounds how many sessions of one user are listed.
const maxSessions = kv.MaxRange

// SessionIDs returns the ids of a user's live sessions (at most
// maxSessions), read from the user's index: what it costs depends on that
// user's sessions, not on the store's size.
func (r *Repo) SessionIDs(ctx context.Context, userID string) ([]string, error) {
	ms, err := r.kv.Members(ixUserSessions+userID, kv.Range{After: endPosition(time.Now()), Limit: maxSessions})
	if err != nil {
		return nil, storeError("list", err)
	}
	ids := make([]string, 0, len(ms))
	for _, m := range ms {
		if _, id, ok := strings.Cut(m, " "); ok {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// userPage is how many members of the users index one read takes.
const userPage = 1000

// eachUserMember calls fn for each member of the users index, in order.
func (r *Repo) eachUserMember(fn func(m string)) error {
	after := ""
	for {
		ms, err := r.kv.Members(ixUsers, kv.Range{After: after, Limit: userPage})
		if err != nil {
			return storeError("list", err)
		}
		for _, m := range ms {
			fn(m)
		}
		if len(ms) < userPage {
			return nil
		}
		after = ms[len(ms)-1]
	}
}

// usersOf reads the users that the index members name, skipping deleted ones.
func (r *Repo) usersOf(ctx context.Context, members []string) ([]*User, error) {
	if len(members) == 0 {
		return nil, nil
	}
	keys := make([]string, len(members))
	for i, m := range members {
		_, id, _ := strings.Cut(m, " ")
		keys[i] = keyUser + id
	}
	vals, err := r.read(ctx, keys...)
	if err != nil {
		return nil, err
	}
	users := make([]*User, 0, len(vals))
	for i, v := range vals {
		var u User
		if err := decodeJSON(keys[i], v, &u); errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile
		} else if err != nil {
			return nil, err
		}
		users = append(users, &u)
	}
	return users, nil
}

// Delete removes a user: the name, the record and its index entry in one
// step. Sessions are the caller's to end.
func (r *Repo) Delete(ctx context.Context, u *User) error {
	m := userMember(u)
	login, err := r.kv.Get(keyLogin + u.ID)
	if err != nil {
		return storeError("read", err)
	}
	ops := []kv.Op{kv.DeleteOp(nameKey(u.Username)), kv.DeleteOp(keyUser + u.ID),
		kv.RemoveOp(ixUsers, m), kv.RemoveOp(ixAdmins, m), kv.RemoveOp(ixDisabled, m),
		kv.RemoveOp(ixCreated, createdMember(u)), kv.DeleteOp(keyLogin + u.ID)}
	if login[0] != nil {
		ops = append(ops, kv.RemoveOp(ixLogin, string(login[0])))
	}
	if _, err := r.apply(ops...); err != nil {
		return err
	}
	return r.ReleaseEmail(ctx, u.Email, u.ID)
}

// UserCounts counts all users, enabled admins and disabled users, in their
// indexes.
func (r *Repo) UserCounts(ctx context.Context) (users, admins, disabled int, err error) {
	counts := make([]int, 3)
	for i, ix := range []string{ixUsers, ixAdmins, ixDisabled} {
		if counts[i], err = r.kv.Count(ix, "", 0); err != nil {
			return 0, 0, 0, storeError("count", err)
		}
	}
	return counts[0], counts[1], counts[2], nil
}

// AnotherAdmin reports whether an enabled admin other than the user with id
// exists.
func (r *Repo) AnotherAdmin(ctx context.Context, id string) (bool, error) {
	ms, err := r.kv.Members(ixAdmins, kv.Range{Limit: 2})
	if err != nil {
		return false, storeError("list", err)
	}
	for _, m := range ms {
		if _, mid, _ := strings.Cut(m, " "); mid != id {
			return true, nil
		}
	}
	return false, nil
}

// Sessions returns a user's live sessions.
func (r *Repo) Sessions(ctx context.Context, userID string) ([]*Session, error) {
	ids, err := r.SessionIDs(ctx, userID)
	if err != nil {
		return nil, err
	}
	out := make([]*Session, 0, len(ids))
	for _, id := range ids {
		s, err := r.Session(ctx, id)
		if errors.Is(err, ErrSessionEnded) {
			continue
		} else if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// TouchSession stores a session again (its LastSeen changed), keeping its
// end, only while the session exists: a touch that read the session before
// a logout (or any revocation) deleted it fails with ErrSessionEnded rather
// than bringing it back.
func (r *Repo) TouchSession(ctx context.Context, s *Session) error {
	ttl := time.Until(s.ExpiresAt)
	if ttl <= 0 {
		return ErrSessionEnded
	}
	data, err := encode(keySession+s.ID, s)
	if err != nil {
		return err
	}
	ok, err := r.apply(kv.PutOp(keySession+s.ID, data, ttl).When(kv.Exists))
	if err == nil && !ok {
		err = ErrSessionEnded
	}
	return err
}

// CountSessions counts live sessions, in the index of all sessions.
func (r *Repo) CountSessions(ctx context.Context) (int, error) {
	n, err := r.kv.Count(ixSessions, endPosition(time.Now()), 0)
	if err != nil {
		return 0, storeError("count", err)
	}
	return n, nil
}

// Bootstrapped reports whether the store records that its first admin was
// made.
func (r *Repo) Bootstrapped(ctx context.Context) (bool, error) {
	vals, err := r.read(ctx, keyBootstrap)
	if err != nil {
		return false, err
	}
	return vals[0] != nil, nil
}

// ClaimBootstrap records that the store's first admin is being made, and
// reports whether this call did (false: another instance did first): a
// claim in the kv.Store, atomic for every instance sharing it, that
// recognises its own value when a client retries it.
func (r *Repo) ClaimBootstrap(ctx context.Context, now time.Time) (bool, error) {
	v := []byte(now.UTC().Format(time.RFC3339Nano))
	return r.apply(kv.PutOp(keyBootstrap, v, 0).When(kv.AbsentOrSame))
}

// DropBootstrap forgets the record of ClaimBootstrap (best effort: the
// admin it announced could not be made).
func (r *Repo) DropBootstrap(ctx context.Context) {
	_ = r.store(ctx).Delete(keyBootstrap)
}

// AnyUser reports whether the store holds an account, in the users index.
func (r *Repo) AnyUser(ctx context.Context) (bool, error) {
	n, err := r.kv.Count(ixUsers, "", 1)
	if err != nil {
		return false, storeError("count", err)
	}
	return n > 0, nil
}

// Ping checks that the store answers, and the Getter too when there is one:
// it has a connection pool of its own (Redis: a second client), and reads
// of users and sessions go through it, so "ready" must mean it answers.
func (r *Repo) Ping(ctx context.Context) error {
	if _, err := r.store(ctx).Read("ping"); err != nil && !errors.Is(err, store.ErrNotFound) {
		return storeError("unreachable", err)
	}
	if r.getter != nil {
		if _, err := r.getter.Get("ping"); err != nil {
			return storeError("unreachable", err)
		}
	}
	return nil
}

// writeJSON stores v at key; a non-zero ttl makes the record expire (set on
// the record: the redis store plugin ignores WriteExpiry and WriteTTL).
func (r *Repo) writeJSON(ctx context.Context, key string, v any, ttl time.Duration) error {
	data, err := encode(key, v)
	if err != nil {
		return err
	}
	if err := r.store(ctx).Write(&store.Record{Key: key, Value: data, Expiry: ttl}); err != nil {
		return storeError("write", err)
	}
	return nil
}

// indexVersion marks a store whose indexes Reindex built.
const indexVersion = "ix/v3"

// Reindex builds the users and session indexes from the records, once per
// store (a store written by a version without them): a scan of the user/
// and session/ keys, at start, never on a request. It returns how many
// records it indexed.
func (r *Repo) Reindex(ctx context.Context) (int, error) {
	if vals, err := r.kv.Get(indexVersion); err != nil {
		return 0, storeError("read", err)
	} else if vals[0] != nil {
		return 0, nil
	}
	n := 0
	for _, prefix := range []string{keyUser, keySession} {
		keys, err := r.store(ctx).List(store.ListPrefix(prefix))
		if err != nil {
			return n, storeError("list", err)
		}
		for _, k := range keys {
			vals, err := r.read(ctx, k)
			if err != nil {
				return n, err
			}
			var op []kv.Op
			if prefix == keyUser {
				var u User
				if decodeJSON(k, vals[0], &u) != nil {
					continue
				}
				op = append(append(op, kv.AddOp(ixUsers, userMember(&u)), kv.AddOp(ixCreated, createdMember(&u))), roleOps(&u)...)
				// An account's first sign-in indexed: never (the version
				// before kept none).
				never := loginMember(&u, time.Time{})
				op = append(op, kv.PutOp(keyLogin+u.ID, []byte(never), 0).When(kv.Absent), kv.AddOp(ixLogin, never))
			} else {
				var s Session
				if decodeJSON(k, vals[0], &s) != nil {
					continue
				}
				m := sessionMember(&s)
				op = append(op, kv.AddOp(ixUserSessions+s.UserID, m), kv.AddOp(ixSessions, m))
			}
			if _, err := r.apply(op...); err != nil {
				return n, err
			}
			n++
		}
	}
	_, err := r.apply(kv.PutOp(indexVersion, []byte("1"), 0))
	return n, err
}
