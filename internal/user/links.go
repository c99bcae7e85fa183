package user

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"go-micro.dev/v4/store"
)

// Keys of mailed links. Only a token's SHA-256 is stored: a copy of the
// store opens no account.
const (
	keyLink     = "link/"     // link/<sha256 hex> -> Link, expiring with it
	keyUserLink = "ulink/"    // ulink/<kind>/<user id> -> the hash of the user's current link of that kind
	keyLinkUsed = "linkused/" // linkused/<sha256 hex> -> "": claimed by its one use
	keyEmail    = "email/"    // email/<lowercased address> -> user id
)

// LinkKind says what a mailed link does.
type LinkKind string

// The kinds of link.
const (
	// LinkVerify confirms an email address (24 h).
	LinkVerify LinkKind = "verify"
	// LinkReset sets a new password (30 min; an invitation lives longer).
	LinkReset LinkKind = "reset"
)

// Link lifetimes.
const (
	VerifyLinkTTL = 24 * time.Hour
	ResetLinkTTL  = 30 * time.Minute
	// relinkAfter is how soon a link of the same kind to the same address
	// may be mailed again: a flood of requests sends one mail.
	relinkAfter = 30 * time.Second
)

// Link is a mailed link as stored, under its token's hash.
type Link struct {
	Kind   LinkKind `json:"kind"`
	UserID string   `json:"user_id"`
	// Email is the address it was mailed to: a verification link confirms
	// that address only.
	Email     string    `json:"email,omitempty"`
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// ErrBadLink: the link is unknown (forged, or replaced by a newer one),
// used, expired, or of another kind.
var ErrBadLink = errors.New("user: this link is not valid: it was used, has expired, was replaced by a newer one, or is mistyped")

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// tokenLen is the length of a token: 32 random bytes, base64url.
const tokenLen = 43

// IssueLink makes a link of kind for the user, mailed to email, living ttl,
// and returns its token. It replaces the user's previous link of the kind
// (which stops working), unless that one went to the same address less
// than relinkAfter ago: then ErrTooSoon.
func (r *Repo) IssueLink(ctx context.Context, kind LinkKind, userID, email string, ttl time.Duration, now time.Time) (string, error) {
	ukey := keyUserLink + string(kind) + "/" + userID
	if old, err := r.read(ctx, ukey); err != nil {
		return "", err
	} else if old[0] != nil {
		var prev Link
		if err := r.readJSON(ctx, keyLink+string(old[0]), &prev); err == nil &&
			prev.Email == email && now.Sub(prev.IssuedAt) < relinkAfter {
			return "", ErrTooSoon
		}
		if err := r.store(ctx).Delete(keyLink + string(old[0])); err != nil {
			return "", storeError("delete", err)
		}
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	token := base64.RawURLEncoding.EncodeToString(b)
	h := hashToken(token)
	l := &Link{Kind: kind, UserID: userID, Email: email, IssuedAt: now, ExpiresAt: now.Add(ttl)}
	if err := r.writeJSON(ctx, keyLink+h, l, ttl); err != nil {
		return "", err
	}
	if err := r.store(ctx).Write(&store.Record{Key: ukey, Value: []byte(h), Expiry: ttl}); err != nil {
		return "", storeError("write", err)
	}
	return token, nil
}

// ConsumeLink returns the link of kind that token names and makes sure it
// is never accepted again: exactly one of any number of concurrent uses,
// on any instance, gets it. Anything else is ErrBadLink.
func (r *Repo) ConsumeLink(ctx context.Context, kind LinkKind, token string, now time.Time) (*Link, error) {
	if len(token) != tokenLen {
		return nil, ErrBadLink
	}
	if _, err := base64.RawURLEncoding.DecodeString(token); err != nil {
		return nil, ErrBadLink
	}
	h := hashToken(token)
	var l Link
	if err := r.readJSON(ctx, keyLink+h, &l); errors.Is(err, ErrNotFound) {
		return nil, ErrBadLink
	} else if err != nil {
		return nil, err
	}
	if l.Kind != kind || !now.Before(l.ExpiresAt) {
		return nil, ErrBadLink
	}
	won, err := r.claimOnce(ctx, keyLinkUsed+h, l.ExpiresAt.Sub(now)+time.Minute)
	if err != nil {
		return nil, err
	}
	if !won {
		return nil, ErrBadLink
	}
	if err := r.store(ctx).Delete(keyLink + h); err != nil {
		return nil, storeError("delete", err)
	}
	return &l, nil
}

// DropLinks ends the user's current link of kind (a password change ends
// a pending reset).
func (r *Repo) DropLinks(ctx context.Context, kind LinkKind, userID string) error {
	ukey := keyUserLink + string(kind) + "/" + userID
	old, err := r.read(ctx, ukey)
	if err != nil || old[0] == nil {
		return err
	}
	st := r.store(ctx)
	if err := st.Delete(keyLink + string(old[0])); err != nil {
		return storeError("delete", err)
	}
	if err := st.Delete(ukey); err != nil {
		return storeError("delete", err)
	}
	return nil
}

// claimOnce writes key unless it exists, atomically (the Claimer, else
// under a process-wide lock), and reports whether it did; the record then
// expires after ttl.
func (r *Repo) claimOnce(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if r.claimer != nil {
		won, err := r.claimer.Claim(key, []byte("1"))
		if err != nil {
			return false, storeError("claim", err)
		}
		if won {
			// The claim has no expiry: give it one now that it is ours.
			if err := r.store(ctx).Write(&store.Record{Key: key, Value: []byte("1"), Expiry: ttl}); err != nil {
				return false, storeError("write", err)
			}
		}
		return won, nil
	}
	r.create.Lock()
	defer r.create.Unlock()
	if v, err := r.read(ctx, key); err != nil {
		return false, err
	} else if v[0] != nil {
		return false, nil
	}
	if err := r.store(ctx).Write(&store.Record{Key: key, Value: []byte("1"), Expiry: ttl}); err != nil {
		return false, storeError("write", err)
	}
	return true, nil
}

func emailKey(addr string) string { return keyEmail + strings.ToLower(addr) }

// ClaimEmail makes addr (compared without case) the user's, failing with
// ErrEmailTaken when another account has it.
func (r *Repo) ClaimEmail(ctx context.Context, addr, userID string) error {
	key := emailKey(addr)
	if v, err := r.read(ctx, key); err != nil {
		return err
	} else if v[0] != nil {
		if string(v[0]) == userID {
			return nil
		}
		return ErrEmailTaken
	}
	var won bool
	var err error
	if r.claimer != nil {
		won, err = r.claimer.Claim(key, []byte(userID))
		if err != nil {
			return storeError("claim", err)
		}
	} else {
		r.create.Lock()
		defer r.create.Unlock()
		if v, err := r.read(ctx, key); err != nil {
			return err
		} else if won = v[0] == nil; won {
			if err := r.store(ctx).Write(&store.Record{Key: key, Value: []byte(userID)}); err != nil {
				return storeError("write", err)
			}
		}
	}
	if !won {
		return ErrEmailTaken
	}
	return nil
}

// ReleaseEmail drops addr's index entry if it is the user's.
func (r *Repo) ReleaseEmail(ctx context.Context, addr, userID string) error {
	if addr == "" {
		return nil
	}
	key := emailKey(addr)
	v, err := r.read(ctx, key)
	if err != nil || v[0] == nil || string(v[0]) != userID {
		return err
	}
	if err := r.store(ctx).Delete(key); err != nil {
		return storeError("delete", err)
	}
	return nil
}

// ByEmail returns the user whose address is addr, compared without case.
func (r *Repo) ByEmail(ctx context.Context, addr string) (*User, error) {
	v, err := r.read(ctx, emailKey(addr))
	if err != nil {
		return nil, err
	}
	if v[0] == nil {
		return nil, ErrNotFound
	}
	return r.Get(ctx, string(v[0]))
}
