package user

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go-micro.dev/v4/store"
)

// Keys in the user service's table. Secondary indexes are just extra keys.
const (
	keyUser        = "user/"    // user/<id> -> User
	keyName        = "name/"    // name/<lowercased username> -> id
	keySession     = "session/" // session/<id> -> Session
	keyUserSession = "usess/"   // usess/<user id>/<session id> -> ""
	// keyBootstrap records that this store had its first admin made.
	keyBootstrap = "bootstrap/admin" // -> the time, RFC 3339
)

// storeError marks a failure of the store itself (not a missing record): it
// crosses RPC as 503 user.unavailable, so clients are told to retry.
func storeError(op string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrStoreUnavailable, op, err)
}

// Repo keeps users and sessions in a go-micro store.
type Repo struct {
	st store.Store
	// claimer, when set, claims usernames atomically in the store itself.
	claimer Claimer
	// getter, when set, reads users and sessions.
	getter Getter
	// create serialises username claims when there is no claimer: it holds
	// within one process only.
	create sync.Mutex
}

// Claimer writes a record only when its key is absent, atomically for every
// process sharing the store: Redis SET NX, a bbolt transaction.
type Claimer interface {
	// Claim stores value at key (in the repo's table) unless the key
	// exists, and reports whether it did.
	Claim(key string, value []byte) (bool, error)
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

// WithClaimer makes Create claim usernames through c.
func (r *Repo) WithClaimer(c Claimer) *Repo {
	r.claimer = c
	return r
}

// NewRepo wraps st. When st can bind a request's context to its operations
// (platform.TracedStore: each becomes a span of the request's trace), every
// method binds the context it is given.
func NewRepo(st store.Store) *Repo { return &Repo{st: st} }

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

// writeJSON stores v at key; a non-zero ttl makes the record expire (set on
// the record: the redis store plugin ignores WriteExpiry and WriteTTL).
func (r *Repo) writeJSON(ctx context.Context, key string, v any, ttl time.Duration) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("user: encode %s: %w", key, err)
	}
	if err := r.store(ctx).Write(&store.Record{Key: key, Value: data, Expiry: ttl}); err != nil {
		return storeError("write", err)
	}
	return nil
}

// Create stores a new user, failing with ErrExists when the name (compared
// without case) is taken. With a Claimer the name is claimed atomically in the
// store, so that of concurrent registrations on any number of instances
// exactly one wins; without one, a mutex makes that hold in this process.
func (r *Repo) Create(ctx context.Context, u *User) error {
	if r.claimer == nil {
		r.create.Lock()
		defer r.create.Unlock()
		if _, err := r.idByName(ctx, u.Username); err == nil {
			return ErrExists
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	// The record first, then the name: a crash in between leaves an
	// unreachable record, never a name that points nowhere.
	if err := r.writeJSON(ctx, keyUser+u.ID, u, 0); err != nil {
		return err
	}
	if r.claimer == nil {
		if err := r.store(ctx).Write(&store.Record{Key: nameKey(u.Username), Value: []byte(u.ID)}); err != nil {
			return storeError("write", err)
		}
		return nil
	}
	won, err := r.claimer.Claim(nameKey(u.Username), []byte(u.ID))
	if err == nil && won {
		return nil
	}
	// Lost (or failed): drop the record. Should that fail too, it stays
	// unreachable, which is harmless.
	_ = r.store(ctx).Delete(keyUser + u.ID)
	if err != nil {
		return storeError("claim", err)
	}
	return ErrExists
}

// Update replaces a user's record (its name does not change).
func (r *Repo) Update(ctx context.Context, u *User) error {
	return r.writeJSON(ctx, keyUser+u.ID, u, 0)
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

// CreateSession stores s until its end.
func (r *Repo) CreateSession(ctx context.Context, s *Session) error {
	ttl := time.Until(s.ExpiresAt)
	if ttl <= 0 {
		return ErrSessionEnded
	}
	if err := r.writeJSON(ctx, keySession+s.ID, s, ttl); err != nil {
		return err
	}
	return r.writeJSON(ctx, keyUserSession+s.UserID+"/"+s.ID, "", ttl)
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

// DeleteSession ends a session.
func (r *Repo) DeleteSession(ctx context.Context, userID, id string) error {
	st := r.store(ctx)
	if err := st.Delete(keySession + id); err != nil {
		return storeError("delete", err)
	}
	if err := st.Delete(keyUserSession + userID + "/" + id); err != nil {
		return storeError("delete", err)
	}
	return nil
}

// SessionIDs returns the ids of a user's live sessions.
func (r *Repo) SessionIDs(ctx context.Context, userID string) ([]string, error) {
	prefix := keyUserSession + userID + "/"
	keys, err := r.store(ctx).List(store.ListPrefix(prefix))
	if err != nil {
		return nil, storeError("list", err)
	}
	ids := make([]string, 0, len(keys))
	for _, k := range keys {
		ids = append(ids, strings.TrimPrefix(k, prefix))
	}
	return ids, nil
}

// Users returns every account. The store has no index to page by, so paging
// and search happen in memory: fine for the thousands of accounts a portal
// of this kind holds, not for millions.
func (r *Repo) Users(ctx context.Context) ([]*User, error) {
	keys, err := r.store(ctx).List(store.ListPrefix(keyUser))
	if err != nil {
		return nil, storeError("list", err)
	}
	users := make([]*User, 0, len(keys))
	for _, k := range keys {
		u, err := r.Get(ctx, strings.TrimPrefix(k, keyUser))
		if errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile
		} else if err != nil {
			return nil, err
		}
		users = append(users, u)
	}
	return users, nil
}

// Delete removes a user: the name first, so that a crash in between leaves an
// unreachable record rather than a name pointing nowhere. Sessions are the
// caller's to end.
func (r *Repo) Delete(ctx context.Context, u *User) error {
	if err := r.store(ctx).Delete(nameKey(u.Username)); err != nil {
		return storeError("delete", err)
	}
	if err := r.store(ctx).Delete(keyUser + u.ID); err != nil {
		return storeError("delete", err)
	}
	return nil
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

// TouchSession stores a session again (its LastSeen changed), keeping its end.
func (r *Repo) TouchSession(ctx context.Context, s *Session) error {
	ttl := time.Until(s.ExpiresAt)
	if ttl <= 0 {
		return ErrSessionEnded
	}
	return r.writeJSON(ctx, keySession+s.ID, s, ttl)
}

// CountSessions counts live sessions.
func (r *Repo) CountSessions(ctx context.Context) (int, error) {
	keys, err := r.store(ctx).List(store.ListPrefix(keySession))
	if err != nil {
		return 0, storeError("list", err)
	}
	return len(keys), nil
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
// reports whether this call did (false: another instance did first). With a
// Claimer the record is claimed atomically; without one, this process
// serialises it.
func (r *Repo) ClaimBootstrap(ctx context.Context, now time.Time) (bool, error) {
	v := []byte(now.UTC().Format(time.RFC3339))
	if r.claimer != nil {
		won, err := r.claimer.Claim(keyBootstrap, v)
		if err != nil {
			return false, storeError("claim", err)
		}
		return won, nil
	}
	r.create.Lock()
	defer r.create.Unlock()
	if done, err := r.Bootstrapped(ctx); err != nil || done {
		return false, err
	}
	if err := r.store(ctx).Write(&store.Record{Key: keyBootstrap, Value: v}); err != nil {
		return false, storeError("write", err)
	}
	return true, nil
}

// DropBootstrap forgets the record of ClaimBootstrap (best effort: the
// admin it announced could not be made).
func (r *Repo) DropBootstrap(ctx context.Context) {
	_ = r.store(ctx).Delete(keyBootstrap)
}

// AnyUser reports whether the store holds an account.
func (r *Repo) AnyUser(ctx context.Context) (bool, error) {
	keys, err := r.store(ctx).List(store.ListPrefix(keyUser))
	if err != nil {
		return false, storeError("list", err)
	}
	return len(keys) > 0, nil
}

// Ping checks that the store answers.
func (r *Repo) Ping(ctx context.Context) error {
	if _, err := r.store(ctx).Read("ping"); err != nil && !errors.Is(err, store.ErrNotFound) {
		return storeError("unreachable", err)
	}
	return nil
}
