package user

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"go-micro.dev/v4/auth"

	"github.com/portal-go/portal/internal/audit"
	pauth "github.com/portal-go/portal/internal/auth"
	"github.com/portal-go/portal/internal/endpoint"
	"github.com/portal-go/portal/internal/kv"
	pb "github.com/portal-go/portal/proto/user"
)

// API keys (personal access tokens): "ptk_<id>_<secret>", sent as a bearer
// token. Only a SHA-256 of the whole key is stored (the secret is 256 random
// bits: a slow hash would add nothing); the key is shown once, when made.
const (
	keyToken     = "token/"  // token/<id> -> Token
	keyUserToken = "utoken/" // utoken/<user id>: the index of its keys' ids
	tokenIDLen   = 16        // hex characters
	// maxTokenLife bounds an API key's expiry.
	maxTokenLife = 366 * 24 * time.Hour
)

// Token is an API key as stored.
type Token struct {
	ID          string    `json:"id"`
	UserID      string    `json:"user_id"`
	Name        string    `json:"name"`
	Hash        string    `json:"hash"` // hex SHA-256 of the whole key
	Permissions []string  `json:"permissions"`
	CreatedAt   time.Time `json:"created_at"`
	ExpiresAt   time.Time `json:"expires_at"`
	LastUsed    time.Time `json:"last_used,omitzero"`
}

func hashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// newKey draws an API key and its id.
func newKey() (id, key string, err error) {
	b := make([]byte, tokenIDLen/2+32)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	id = hex.EncodeToString(b[:tokenIDLen/2])
	return id, pauth.KeyPrefix + id + "_" + base64.RawURLEncoding.EncodeToString(b[tokenIDLen/2:]), nil
}

// keyID returns the id an API key names, or "" when it is malformed.
func keyID(key string) string {
	rest, ok := strings.CutPrefix(key, pauth.KeyPrefix)
	if !ok || len(rest) < tokenIDLen+2 || rest[tokenIDLen] != '_' {
		return ""
	}
	if _, err := hex.DecodeString(rest[:tokenIDLen]); err != nil {
		return ""
	}
	return rest[:tokenIDLen]
}

// CreateToken stores a key until its expiry (the store drops it then) and
// its id in its owner's index, in one step.
func (r *Repo) CreateToken(ctx context.Context, t *Token) error {
	data, err := encode(keyToken+t.ID, t)
	if err != nil {
		return err
	}
	_, err = r.apply(kv.PutOp(keyToken+t.ID, data, time.Until(t.ExpiresAt)), kv.AddOp(keyUserToken+t.UserID, t.ID))
	return err
}

// Token returns a key that has not expired.
func (r *Repo) Token(ctx context.Context, id string) (*Token, error) {
	var t Token
	if err := r.readJSON(ctx, keyToken+id, &t); errors.Is(err, ErrNotFound) {
		return nil, ErrNoToken
	} else if err != nil {
		return nil, err
	}
	return &t, nil
}

// TouchToken stores a key again (its LastUsed changed), keeping its expiry,
// only while it exists: a use racing a revocation does not bring it back.
func (r *Repo) TouchToken(ctx context.Context, t *Token) error {
	data, err := encode(keyToken+t.ID, t)
	if err != nil {
		return err
	}
	ok, err := r.apply(kv.PutOp(keyToken+t.ID, data, time.Until(t.ExpiresAt)).When(kv.Exists))
	if err == nil && !ok {
		err = ErrNoToken
	}
	return err
}

// Tokens returns a user's keys that have not expired, by the user's index
// (whose ids of expired keys are dropped as they are met).
func (r *Repo) Tokens(ctx context.Context, userID string) ([]*Token, error) {
	ids, err := r.kv.Members(keyUserToken+userID, kv.Range{Limit: kv.MaxRange})
	if err != nil {
		return nil, storeError("list", err)
	}
	out := make([]*Token, 0, len(ids))
	for _, id := range ids {
		t, err := r.Token(ctx, id)
		if errors.Is(err, ErrNoToken) {
			_, _ = r.apply(kv.RemoveOp(keyUserToken+userID, id))
			continue
		} else if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// DeleteToken removes a key and its index entry, in one step.
func (r *Repo) DeleteToken(ctx context.Context, t *Token) error {
	_, err := r.apply(kv.DeleteOp(keyToken+t.ID), kv.RemoveOp(keyUserToken+t.UserID, t.ID))
	return err
}

// checkKey is Check for an API key: it must be stored, match its hash, not
// have expired, and its owner must exist and be enabled. It grants the
// permissions of the key that the owner's roles give now, so a key shrinks
// with its owner. Its last use is written at most once per seenEvery.
func (h *Handler) checkKey(ctx context.Context, key string) (context.Context, *auth.Account, pauth.Grant, error) {
	id := keyID(key)
	if id == "" {
		return ctx, nil, pauth.Grant{}, pauth.ErrSessionEnded
	}
	t, err := h.repo.Token(ctx, id)
	if errors.Is(err, ErrNoToken) {
		return ctx, nil, pauth.Grant{}, pauth.ErrSessionEnded
	} else if err != nil {
		return ctx, nil, pauth.Grant{}, rpcUnavailable(err)
	}
	now := h.now()
	if subtle.ConstantTimeCompare([]byte(hashKey(key)), []byte(t.Hash)) != 1 || !now.Before(t.ExpiresAt) {
		return ctx, nil, pauth.Grant{}, pauth.ErrSessionEnded
	}
	u, err := h.repo.Get(ctx, t.UserID)
	if errors.Is(err, ErrNotFound) {
		return ctx, nil, pauth.Grant{}, pauth.ErrSessionEnded
	} else if err != nil {
		return ctx, nil, pauth.Grant{}, rpcUnavailable(err)
	}
	if u.Disabled {
		return ctx, nil, pauth.Grant{}, pauth.ErrSessionEnded
	}
	if now.Sub(t.LastUsed) >= seenEvery {
		t.LastUsed = now.UTC()
		if err := h.repo.TouchToken(ctx, t); err != nil {
			h.log.Debug("API key last-used not written", "key", t.ID, "err", err)
		}
	}
	acc := &auth.Account{ID: u.ID, Type: "key", Metadata: map[string]string{pauth.MetaUsername: u.Username, pauth.MetaKey: t.ID}}
	g := h.grant(h.effectiveRoles(u))
	g.Permissions = slices.DeleteFunc(g.Permissions, func(p string) bool { return !slices.Contains(t.Permissions, p) })
	return ctx, acc, g, nil
}

func tokenPB(t *Token) *pb.Token {
	out := &pb.Token{Id: t.ID, UserId: t.UserID, Name: t.Name, Permissions: t.Permissions,
		CreatedAt: t.CreatedAt.Unix(), ExpiresAt: t.ExpiresAt.Unix()}
	if !t.LastUsed.IsZero() {
		out.LastUsed = t.LastUsed.Unix()
	}
	return out
}

// CreateToken makes an API key for the caller (a signed-in session: a key
// cannot make keys) with a subset of the permissions the caller holds now.
func (h *Handler) CreateToken(ctx context.Context, req *pb.CreateTokenRequest, rsp *pb.CreateTokenResponse) error {
	acc, err := account(ctx)
	if err != nil {
		return err
	}
	now := h.now()
	exp := time.Unix(req.ExpiresAt, 0)
	name := strings.TrimSpace(req.Name)
	if name == "" || utf8.RuneCountInString(name) > 64 || !exp.After(now) || exp.Sub(now) > maxTokenLife {
		return rpcError(ErrBadToken)
	}
	perms, err := cleanPermissions(req.Permissions)
	if err != nil {
		return rpcError(err)
	}
	for _, p := range perms {
		if !pauth.Can(ctx, endpoint.Permission(p)) {
			return rpcError(ErrTokenPermissions)
		}
	}
	id, key, err := newKey()
	if err != nil {
		return rpcError(err)
	}
	t := &Token{ID: id, UserID: acc.ID, Name: name, Hash: hashKey(key), Permissions: perms, CreatedAt: now.UTC(), ExpiresAt: exp.UTC()}
	if err := h.repo.CreateToken(ctx, t); err != nil {
		return rpcError(err)
	}
	h.record(ctx, acc, audit.KindTokenCreated, acc.ID, acc.Metadata[pauth.MetaUsername],
		"key "+id+" "+name+"; permissions "+strings.Join(perms, ",")+"; expires "+t.ExpiresAt.Format(time.RFC3339))
	rsp.Token, rsp.Secret = tokenPB(t), key
	return nil
}

// ListTokens returns the caller's keys or, with users.read, another user's,
// newest first.
func (h *Handler) ListTokens(ctx context.Context, req *pb.ListTokensRequest, rsp *pb.ListTokensResponse) error {
	acc, err := caller(ctx)
	if err != nil {
		return err
	}
	target, err := subject(ctx, acc, req.UserId)
	if err != nil {
		return err
	}
	list, err := h.repo.Tokens(ctx, target)
	if err != nil {
		return rpcError(err)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].CreatedAt.After(list[j].CreatedAt) })
	for _, t := range list {
		rsp.Tokens = append(rsp.Tokens, tokenPB(t))
	}
	return nil
}

// RevokeToken deletes one of the caller's keys or, with sessions.revoke,
// anyone's. Someone else's key answers as missing to a caller without it.
// The next request with it is refused everywhere: no gateway caches keys.
func (h *Handler) RevokeToken(ctx context.Context, req *pb.RevokeTokenRequest, rsp *pb.RevokeTokenResponse) error {
	acc, err := caller(ctx)
	if err != nil {
		return err
	}
	t, err := h.repo.Token(ctx, req.Id)
	if errors.Is(err, ErrNoToken) || (err == nil && !mayRevoke(ctx, acc, t.UserID)) {
		return rpcError(ErrNoToken)
	} else if err != nil {
		return rpcError(err)
	}
	if err := h.repo.DeleteToken(ctx, t); err != nil {
		return rpcError(err)
	}
	h.record(ctx, acc, audit.KindTokenRevoked, t.UserID, h.nameOf(ctx, t.UserID), revokedBy(acc, t.UserID)+"; key "+t.ID+" "+t.Name)
	return nil
}
