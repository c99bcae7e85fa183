package user

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/portal-go/portal/internal/audit"
	pauth "github.com/portal-go/portal/internal/auth"
	"github.com/portal-go/portal/internal/kv"
	pb "github.com/portal-go/portal/proto/user"
)

// Passkeys (WebAuthn, with github.com/go-webauthn/webauthn). The relying
// party is accounts.publicURL: its host is the RP ID, its scheme and host
// the one origin accepted. A ceremony's state (the challenge, and for a
// registration the account and session that began it) is kept in the
// store under the SHA-256 of a random id that the client sends back; it
// lives CeremonyTTL and is consumed by its first use, right or wrong.

// Errors of passkeys.
var (
	// ErrPasskeyCeremony: the ceremony id is unknown, used, expired, of
	// another kind, or begun by another account or session.
	ErrPasskeyCeremony = errors.New("user: the passkey request has expired or was used; start again")
	// ErrPasskeyInvalid: the authenticator's answer is malformed, for
	// another site or challenge, signed by an unknown credential or one of
	// another account, or from a cloned authenticator.
	ErrPasskeyInvalid = errors.New("user: the passkey could not be verified")
	// ErrBadPasskeyName: a name is 1-64 characters, no control characters.
	ErrBadPasskeyName = errors.New("user: a passkey's name is 1-64 characters, without control characters")
	// ErrNoPasskey: the caller has no passkey with the id.
	ErrNoPasskey = errors.New("user: no such passkey")
	// ErrTooManyPasskeys: an account holds at most maxPasskeys.
	ErrTooManyPasskeys = errors.New("user: an account can hold at most 20 passkeys; delete one first")
	// ErrReauthRequired: the change needs the password, or a sign-in
	// moments ago.
	ErrReauthRequired = errors.New("user: confirm with your password (or sign in again) to do this")
)

const (
	// CeremonyTTL is how long a begun ceremony waits for its answer.
	CeremonyTTL = 5 * time.Minute
	// RecentSignIn is how long after signing in a session may delete a
	// passkey without the password.
	RecentSignIn = 5 * time.Minute
	maxPasskeys  = 20
	// keyCeremony: webauthn/<sha256 hex of the id> -> ceremony.
	keyCeremony = "webauthn/"
)

// Passkey is a WebAuthn credential of an account, as stored on the User.
type Passkey struct {
	ID         string              `json:"id"`
	Name       string              `json:"name"`
	Credential webauthn.Credential `json:"credential"`
	CreatedAt  time.Time           `json:"created_at"`
	LastUsed   time.Time           `json:"last_used,omitzero"`
}

// ceremonyKind says what a ceremony is for.
type ceremonyKind string

const (
	ceremonyRegister ceremonyKind = "register"
	ceremonyLogin    ceremonyKind = "login"
)

// ceremony is a begun ceremony's state.
type ceremony struct {
	Kind ceremonyKind `json:"kind"`
	// UserID and SessionID began a registration.
	UserID    string               `json:"user_id,omitempty"`
	SessionID string               `json:"session_id,omitempty"`
	ExpiresAt time.Time            `json:"expires_at"`
	Data      webauthn.SessionData `json:"data"`
}

// Passkeys implements the Passkeys RPC service (passkeys.proto).
type Passkeys struct{ h *Handler }

// NewPasskeys serves the Passkeys calls with h.
func NewPasskeys(h *Handler) *Passkeys { return &Passkeys{h: h} }

// webauthnUser is a User as the library sees it: its handle is the
// account's id.
type webauthnUser struct{ u *User }

func (w webauthnUser) WebAuthnID() []byte   { return []byte(w.u.ID) }
func (w webauthnUser) WebAuthnName() string { return w.u.Username }
func (w webauthnUser) WebAuthnDisplayName() string {
	if w.u.DisplayName != "" {
		return w.u.DisplayName
	}
	return w.u.Username
}
func (w webauthnUser) WebAuthnCredentials() []webauthn.Credential {
	out := make([]webauthn.Credential, len(w.u.Passkeys))
	for i, p := range w.u.Passkeys {
		out[i] = p.Credential
	}
	return out
}

// relyingParty is the WebAuthn relying party of accounts.publicURL now.
func (h *Handler) relyingParty() (*webauthn.WebAuthn, error) {
	u, err := url.Parse(h.cfg.Current().Accounts.PublicURL)
	if err != nil {
		return nil, err
	}
	return webauthn.New(&webauthn.Config{RPID: u.Hostname(), RPDisplayName: "Portal", RPOrigins: []string{u.Scheme + "://" + u.Host}})
}

// beginCeremony keeps c and returns its id.
func (h *Handler) beginCeremony(ctx context.Context, c *ceremony) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	id := base64.RawURLEncoding.EncodeToString(b)
	c.ExpiresAt = h.now().Add(CeremonyTTL)
	return id, h.repo.writeJSON(ctx, keyCeremony+hashToken(id), c, CeremonyTTL)
}

// takeCeremony returns the ceremony of kind that id names and deletes it:
// of concurrent uses, on any instance, one gets it.
func (h *Handler) takeCeremony(ctx context.Context, id string, kind ceremonyKind) (*ceremony, error) {
	if _, err := base64.RawURLEncoding.DecodeString(id); err != nil || len(id) != tokenLen {
		return nil, ErrPasskeyCeremony
	}
	key := keyCeremony + hashToken(id)
	vals, err := h.repo.read(ctx, key)
	if err != nil {
		return nil, err
	}
	if vals[0] == nil {
		return nil, ErrPasskeyCeremony
	}
	if won, err := h.repo.apply(kv.DeleteOp(key).WhenEqual(vals[0])); err != nil || !won {
		if err == nil {
			err = ErrPasskeyCeremony
		}
		return nil, err
	}
	var c ceremony
	if err := decodeJSON(key, vals[0], &c); err != nil {
		return nil, err
	}
	if c.Kind != kind || !h.now().Before(c.ExpiresAt) {
		return nil, ErrPasskeyCeremony
	}
	return &c, nil
}

// passkeyName checks a passkey's name.
func passkeyName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" || validDisplayName(name) != nil {
		return "", ErrBadPasskeyName
	}
	return name, nil
}

// passkeyIndex is the index of the passkey with id in u's, or -1.
func passkeyIndex(u *User, id string) int {
	return slices.IndexFunc(u.Passkeys, func(p Passkey) bool { return p.ID == id })
}

// BeginRegistration starts adding a passkey to the caller's account: a
// discoverable credential (so that it signs in without a username), none of
// the account's own again.
func (p *Passkeys) BeginRegistration(ctx context.Context, req *pb.BeginPasskeyRequest, rsp *pb.BeginPasskeyResponse) error {
	h := p.h
	acc, u, err := h.signedInUser(ctx)
	if err != nil {
		return err
	}
	if len(u.Passkeys) >= maxPasskeys {
		return rpcError(ErrTooManyPasskeys)
	}
	rp, err := h.relyingParty()
	if err != nil {
		return rpcError(err)
	}
	wu := webauthnUser{u}
	creation, data, err := rp.BeginRegistration(wu,
		webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementRequired),
		webauthn.WithExclusions(webauthn.Credentials(wu.WebAuthnCredentials()).CredentialDescriptors()))
	if err != nil {
		return rpcError(err)
	}
	return h.answerCeremony(ctx, &ceremony{Kind: ceremonyRegister, UserID: u.ID, SessionID: acc.Metadata[pauth.MetaSession], Data: *data}, creation.Response, rsp)
}

// answerCeremony keeps c and answers its id and the browser's options.
func (h *Handler) answerCeremony(ctx context.Context, c *ceremony, options any, rsp *pb.BeginPasskeyResponse) error {
	opts, err := json.Marshal(options)
	if err != nil {
		return rpcError(err)
	}
	id, err := h.beginCeremony(ctx, c)
	if err != nil {
		return rpcError(err)
	}
	rsp.Ceremony, rsp.Options = id, opts
	return nil
}

// FinishRegistration checks the authenticator's answer to a registration
// the caller's session began, and keeps the passkey. Audited.
func (p *Passkeys) FinishRegistration(ctx context.Context, req *pb.FinishPasskeyRequest, rsp *pb.Passkey) error {
	h := p.h
	acc, err := account(ctx)
	if err != nil {
		return err
	}
	name, err := passkeyName(req.Name)
	if err != nil {
		return rpcError(err)
	}
	c, err := h.takeCeremony(ctx, req.Ceremony, ceremonyRegister)
	if err != nil {
		return rpcError(err)
	}
	if c.UserID != acc.ID || c.SessionID != acc.Metadata[pauth.MetaSession] {
		return rpcError(ErrPasskeyCeremony)
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(req.Credential)
	if err != nil {
		return rpcError(fmt.Errorf("%w: %w", ErrPasskeyInvalid, err))
	}
	u, err := h.repo.Get(ctx, acc.ID)
	if err != nil {
		return rpcError(err)
	}
	rp, err := h.relyingParty()
	if err != nil {
		return rpcError(err)
	}
	cred, err := rp.CreateCredential(webauthnUser{u}, c.Data, parsed)
	if err != nil {
		return rpcError(fmt.Errorf("%w: %w", ErrPasskeyInvalid, err))
	}
	if len(u.Passkeys) >= maxPasskeys {
		return rpcError(ErrTooManyPasskeys)
	}
	if slices.ContainsFunc(u.Passkeys, func(p Passkey) bool { return bytes.Equal(p.Credential.ID, cred.ID) }) {
		return rpcError(ErrPasskeyInvalid)
	}
	id := make([]byte, 9)
	if _, err := rand.Read(id); err != nil {
		return rpcError(err)
	}
	now := h.now().UTC()
	pk := Passkey{ID: base64.RawURLEncoding.EncodeToString(id), Name: name, Credential: *cred, CreatedAt: now}
	u.Passkeys, u.UpdatedAt = append(u.Passkeys, pk), now
	if err := h.repo.Update(ctx, u); err != nil {
		return rpcError(err)
	}
	h.record(ctx, acc, audit.KindPasskey, u.ID, u.Username, fmt.Sprintf("passkey %q added", name))
	*rsp = *passkeyPB(pk)
	return nil
}

func passkeyPB(p Passkey) *pb.Passkey {
	out := &pb.Passkey{Id: p.ID, Name: p.Name, CreatedAt: p.CreatedAt.Unix()}
	if !p.LastUsed.IsZero() {
		out.LastUsed = p.LastUsed.Unix()
	}
	return out
}

// ListPasskeys returns the caller's passkeys, oldest first.
func (p *Passkeys) ListPasskeys(ctx context.Context, req *pb.ListPasskeysRequest, rsp *pb.ListPasskeysResponse) error {
	acc, err := account(ctx)
	if err != nil {
		return err
	}
	u, err := p.h.repo.Get(ctx, acc.ID)
	if err != nil {
		return rpcError(err)
	}
	rsp.Passkeys = make([]*pb.Passkey, 0, len(u.Passkeys))
	for _, pk := range u.Passkeys {
		rsp.Passkeys = append(rsp.Passkeys, passkeyPB(pk))
	}
	return nil
}

// RenamePasskey names one of the caller's passkeys anew. Audited.
func (p *Passkeys) RenamePasskey(ctx context.Context, req *pb.RenamePasskeyRequest, rsp *pb.Passkey) error {
	h := p.h
	acc, err := account(ctx)
	if err != nil {
		return err
	}
	name, err := passkeyName(req.Name)
	if err != nil {
		return rpcError(err)
	}
	u, err := h.repo.Get(ctx, acc.ID)
	if err != nil {
		return rpcError(err)
	}
	i := passkeyIndex(u, req.Id)
	if i < 0 {
		return rpcError(ErrNoPasskey)
	}
	old := u.Passkeys[i].Name
	u.Passkeys[i].Name, u.UpdatedAt = name, h.now().UTC()
	if err := h.repo.Update(ctx, u); err != nil {
		return rpcError(err)
	}
	h.record(ctx, acc, audit.KindPasskey, u.ID, u.Username, fmt.Sprintf("passkey %q renamed %q", old, name))
	*rsp = *passkeyPB(u.Passkeys[i])
	return nil
}

// DeletePasskey removes one of the caller's passkeys. A session that
// signed in more than RecentSignIn ago must send the password, checked as
// a login is (counted, locked out, audited). Audited.
func (p *Passkeys) DeletePasskey(ctx context.Context, req *pb.DeletePasskeyRequest, rsp *pb.DeletePasskeyResponse) error {
	h := p.h
	acc, err := account(ctx)
	if err != nil {
		return err
	}
	s, u, err := h.sessionAndUser(ctx, acc)
	if err != nil {
		return rpcError(err)
	}
	i := passkeyIndex(u, req.Id)
	if i < 0 {
		return rpcError(ErrNoPasskey)
	}
	if h.now().Sub(s.CreatedAt) > RecentSignIn {
		if req.Password == "" {
			return rpcError(ErrReauthRequired)
		}
		g, err := h.guardLogin(ctx, u.Username, pauth.ClientFromContext(ctx), req.DeviceToken, u)
		if err != nil {
			return rpcError(err)
		}
		if ok, err := h.checkGuarded(ctx, g, u, req.Password, "wrong password (passkey deletion)"); err != nil {
			return rpcError(err)
		} else if !ok {
			return rpcError(ErrWrongPassword)
		}
	}
	name := u.Passkeys[i].Name
	u.Passkeys, u.UpdatedAt = slices.Delete(u.Passkeys, i, i+1), h.now().UTC()
	if err := h.repo.Update(ctx, u); err != nil {
		return rpcError(err)
	}
	h.record(ctx, acc, audit.KindPasskey, u.ID, u.Username, fmt.Sprintf("passkey %q deleted", name))
	return nil
}

// BeginLogin starts a sign-in with a passkey: options that name no
// account (the authenticator offers the site's discoverable credentials).
// Each begin is rate limited per client address, as logins are.
func (p *Passkeys) BeginLogin(ctx context.Context, req *pb.BeginPasskeyRequest, rsp *pb.BeginPasskeyResponse) error {
	h := p.h
	addr := counterAddr(truncate(pauth.ClientFromContext(ctx), 64))
	if err := h.takeRate(ctx, []bucket{{keyRate + "passkey-addr/" + addr, h.cfg.Current().RateLimit.LoginPerAddress}}); err != nil {
		return rpcError(err)
	}
	rp, err := h.relyingParty()
	if err != nil {
		return rpcError(err)
	}
	assertion, data, err := rp.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationPreferred))
	if err != nil {
		return rpcError(err)
	}
	return h.answerCeremony(ctx, &ceremony{Kind: ceremonyLogin, Data: *data}, assertion.Response, rsp)
}

// verifyPasskey checks an assertion (credential, the browser's JSON) of a
// login ceremony c as u's: whether it holds, with a detail for the audit
// log; an error means no verdict. A passkey of another account, and a sign
// count that did not grow (a cloned authenticator), fail. When it holds,
// the passkey's sign count and last use are stored.
func (h *Handler) verifyPasskey(ctx context.Context, c *ceremony, credential []byte, u *User) (bool, string, error) {
	parsed, err := protocol.ParseCredentialRequestResponseBytes(credential)
	if err != nil {
		return false, "malformed passkey answer", nil
	}
	rp, err := h.relyingParty()
	if err != nil {
		return false, "", err
	}
	_, cred, err := rp.ValidatePasskeyLogin(func(rawID, userHandle []byte) (webauthn.User, error) {
		if string(userHandle) != u.ID {
			return nil, errors.New("the passkey is another account's")
		}
		return webauthnUser{u}, nil
	}, c.Data, parsed)
	if err != nil {
		detail := "passkey not verified"
		var pe *protocol.Error
		if errors.As(err, &pe) && pe.Details != "" {
			detail += ": " + pe.Details
		}
		return false, detail, nil
	}
	if cred.Authenticator.CloneWarning {
		return false, "passkey sign count did not grow: a cloned authenticator?", nil
	}
	i := slices.IndexFunc(u.Passkeys, func(p Passkey) bool { return bytes.Equal(p.Credential.ID, cred.ID) })
	now := h.now().UTC()
	u.Passkeys[i].Credential, u.Passkeys[i].LastUsed, u.UpdatedAt = *cred, now, now
	if err := h.repo.Update(ctx, u); err != nil {
		return false, "", err
	}
	return true, "", nil
}

// passkeyFactor checks a passkey's answer as u's second factor: the
// ceremony must be a login's, and the passkey u's. No verdict without a
// usable ceremony (the error).
func (h *Handler) passkeyFactor(ctx context.Context, u *User, ceremonyID string, credential []byte) (bool, string, error) {
	c, err := h.takeCeremony(ctx, ceremonyID, ceremonyLogin)
	if err != nil {
		return false, "", err
	}
	return h.verifyPasskey(ctx, c, credential, u)
}

// FinishLogin signs in with a passkey: the account is the one whose
// passkey answered. Failures count toward the same lockouts as wrong
// passwords, and the session is opened as a password login opens one
// (AMR "hwk"). An account that must change its password signs in with it.
func (p *Passkeys) FinishLogin(ctx context.Context, req *pb.PasskeyLoginRequest, rsp *pb.LoginResponse) error {
	h := p.h
	c, err := h.takeCeremony(ctx, req.Ceremony, ceremonyLogin)
	if err != nil {
		return rpcError(err)
	}
	// The account is known only from the answer: parse it once to name the
	// counters, then verify it.
	var named *User
	if parsed, err := protocol.ParseCredentialRequestResponseBytes(req.Credential); err == nil {
		if named, err = h.repo.Get(ctx, string(parsed.Response.UserHandle)); err != nil && !errors.Is(err, ErrNotFound) {
			return rpcError(err)
		}
	}
	name := ""
	if named != nil {
		name = named.Username
	}
	g, err := h.guardLogin(ctx, name, req.ClientAddr, req.DeviceToken, named)
	if err != nil {
		return rpcError(err)
	}
	if err := h.takeRate(ctx, h.loginBuckets(g)); err != nil {
		return rpcError(err)
	}
	ok, detail := false, "passkey of no account"
	if named != nil {
		if ok, detail, err = h.verifyPasskey(ctx, c, req.Credential, named); err != nil {
			return rpcError(err)
		}
	}
	if ok, err = h.settleGuarded(ctx, g, named, ok, detail); err != nil {
		return rpcError(err)
	}
	if !ok {
		return rpcError(ErrPasskeyInvalid)
	}
	if err := h.admit(ctx, g, named); err != nil {
		return err
	}
	if named.MustChangePassword {
		return rpcError(ErrPasswordChangeRequired)
	}
	return h.openSession(ctx, g, named, req.UserAgent, []string{"hwk"}, "with a passkey", rsp)
}
