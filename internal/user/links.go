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

	"github.com/portal-go/portal/internal/kv"
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

// claimOnce writes key unless a live record is there, atomically for every
// process sharing the store, and reports whether it did; the record
// expires after ttl.
func (r *Repo) claimOnce(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	return r.apply(kv.PutOp(key, []byte("1"), ttl).When(kv.Absent))
}

func emailKey(addr string) string { return keyEmail + strings.ToLower(addr) }

// ClaimEmail makes addr (compared without case) the user's, failing with
// ErrEmailTaken when another account has it. The claim names the account,
// so that a retried claim recognises itself.
func (r *Repo) ClaimEmail(ctx context.Context, addr, userID string) error {
	won, err := r.apply(kv.PutOp(emailKey(addr), []byte(userID), 0).When(kv.AbsentOrSame))
	if err != nil {
		return err
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
	_, err := r.apply(kv.DeleteOp(emailKey(addr)).WhenEqual([]byte(userID)))
	return err
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
