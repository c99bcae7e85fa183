package user

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"go-micro.dev/v4"
	"go-micro.dev/v4/auth"
	"go-micro.dev/v4/client"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/portal-go/portal/internal/audit"
	pauth "github.com/portal-go/portal/internal/auth"
	"github.com/portal-go/portal/internal/config"
	"github.com/portal-go/portal/internal/endpoint"
	"github.com/portal-go/portal/internal/mail"
	"github.com/portal-go/portal/internal/outbox"
	pb "github.com/portal-go/portal/proto/user"
)

// TopicSessionRevoked is the broker topic of pb.SessionRevoked events.
const TopicSessionRevoked = "session.revoked"

// Handler implements the User RPC service.
type Handler struct {
	repo    *Repo
	auth    auth.Auth
	cfg     *config.Center
	revoked micro.Event
	changed micro.Event
	// roleEvents publishes pb.RoleChanged (nil: other instances learn a
	// change at their next refresh).
	roleEvents micro.Event
	audit      *audit.Publisher // nil: nothing audited
	mail       *mail.Outbox     // nil: no mail (WithMail)
	// outbox keeps the events above until the broker has them (nil: a
	// publish that fails is lost; gateways notice at cache expiry).
	outbox *outbox.Outbox
	log    *slog.Logger
	now    func() time.Time
	// roles are this instance's view of the role definitions, read again
	// every refreshEvery (RolesRefresh).
	roles        roleSet
	refreshEvery time.Duration
	// admins serialises changes that could leave nobody holding
	// roles.write.
	admins sync.Mutex
	// sessionEnded, when set, hears of each session endSession ended (the
	// OpenID provider ends the grants made in it).
	sessionEnded func(userID, sid string)
}

// Events are where the handler announces what gateways must learn at once.
type Events struct {
	// Revoked publishes pb.SessionRevoked (TopicSessionRevoked).
	Revoked micro.Event
	// Changed publishes pb.UserChanged (TopicUserChanged).
	Changed micro.Event
	// Roles publishes pb.RoleChanged (TopicRoleChanged) to every instance of
	// the user service.
	Roles micro.Event
}

// NewHandler builds the handler. a must be able to mint tokens.
func NewHandler(repo *Repo, a auth.Auth, cfg *config.Center, ev Events, log *slog.Logger) *Handler {
	return &Handler{repo: repo, auth: a, cfg: cfg, revoked: ev.Revoked, changed: ev.Changed, roleEvents: ev.Roles, log: log, now: time.Now, refreshEvery: RolesRefresh}
}

// WithAudit makes the handler publish an audit entry for each register,
// login, failed login, lockout, logout and password change, and returns it.
func (h *Handler) WithAudit(p *audit.Publisher) *Handler {
	h.audit = p
	return h
}

// OnSessionEnded makes f hear of every session that ends (logout, an admin
// or the user ending it, a password change, a disabled or deleted user). Set
// it before the handler serves.
func (h *Handler) OnSessionEnded(f func(userID, sid string)) { h.sessionEnded = f }

// WithOutbox makes the handler keep every event it publishes in o, written
// with the change it reports, until the broker has it; it returns h. Relay
// o with Send.
func (h *Handler) WithOutbox(o *outbox.Outbox) *Handler {
	h.outbox = o
	return h
}

// eventTypes are the events the handler publishes, by topic: what Send
// decodes an outbox record into.
var eventTypes = map[string]func() proto.Message{
	TopicSessionRevoked: func() proto.Message { return new(pb.SessionRevoked) },
	TopicUserChanged:    func() proto.Message { return new(pb.UserChanged) },
	TopicRoleChanged:    func() proto.Message { return new(pb.RoleChanged) },
}

// Send is the outbox's Sender for the handler's events: it publishes the
// event m holds through c, then waits for flush (the broker's
// acknowledgement; nil: none).
func Send(c client.Client, flush func(context.Context) error) outbox.Sender {
	return func(ctx context.Context, m outbox.Message) error {
		newMsg, ok := eventTypes[m.Topic]
		if !ok {
			return fmt.Errorf("outbox: unknown topic %q", m.Topic)
		}
		msg := newMsg()
		if err := protojson.Unmarshal(m.Body, msg); err != nil {
			return fmt.Errorf("outbox: %s: %w", m.Topic, err)
		}
		if err := c.Publish(ctx, c.NewMessage(m.Topic, msg)); err != nil {
			return err
		}
		if flush == nil {
			return nil
		}
		return flush(ctx)
	}
}

// event is msg as an outbox record on topic.
func event(topic string, msg proto.Message) outbox.Message {
	body, err := protojson.Marshal(msg)
	if err != nil { // a generated message always marshals
		panic(err)
	}
	return outbox.NewMessage(topic, body)
}

// announce publishes msg (kept in the outbox as m) through ev; once the
// broker has it, the outbox forgets m. It returns the publish's error: the
// outbox's relay sends m again.
func (h *Handler) announce(ctx context.Context, ev micro.Event, m outbox.Message, msg proto.Message) error {
	if err := ev.Publish(ctx, msg); err != nil {
		return err
	}
	h.outbox.Published(m)
	return nil
}

// publishAudit publishes an audit entry for something that has happened: a
// failure to publish is Record's to count and log, never the caller's, and
// a caller that has gone away does not take the entry with it.
func (h *Handler) publishAudit(ctx context.Context, e audit.Entry) {
	if e.ClientAddr == "" {
		e.ClientAddr = pauth.ClientFromContext(ctx)
	}
	h.audit.Record(context.WithoutCancel(ctx), e)
}

// Register creates an account with the role "user", when
// accounts.selfRegistration allows. An email address (optional unless
// accounts.requireEmail) is claimed for the account and sent a
// verification link.
func (h *Handler) Register(ctx context.Context, req *pb.RegisterRequest, rsp *pb.RegisterResponse) error {
	set := h.cfg.Current().Accounts
	if !set.SelfRegistration {
		return rpcError(ErrRegistrationClosed)
	}
	if err := ValidUsername(req.Username); err != nil {
		return rpcError(err)
	}
	if err := ValidPassword(req.Password); err != nil {
		return rpcError(err)
	}
	if err := h.takeRate(ctx, h.registerBuckets(req.Username, pauth.ClientFromContext(ctx))); err != nil {
		return rpcError(err)
	}
	email := strings.TrimSpace(req.Email)
	if email == "" && set.RequireEmail {
		return rpcError(ErrEmailRequired)
	}
	if email != "" {
		var err error
		if email, err = normalEmail(email); err != nil {
			return rpcError(err)
		}
	}
	// Cheap early refusal before paying for a hash; Create checks again.
	if _, err := h.repo.ByName(ctx, req.Username); err == nil {
		return rpcError(ErrExists)
	}
	u, err := h.newUser(ctx, req.Username, req.Password, []string{pauth.RoleUser})
	if err != nil {
		return rpcError(err)
	}
	u.Email = email
	if mail.Lang(req.Lang) == req.Lang {
		u.Lang = req.Lang
	}
	if email != "" {
		if err := h.repo.ClaimEmail(ctx, email, u.ID); err != nil {
			return rpcError(err)
		}
	}
	if err := h.repo.Create(ctx, u); err != nil {
		_ = h.repo.ReleaseEmail(ctx, email, u.ID)
		return rpcError(err)
	}
	if email != "" {
		if err := h.sendVerification(ctx, u, email, ""); err != nil {
			// The account stands; its owner can ask for another link.
			h.log.Warn("verification mail not queued", "user", u.Username, "err", err)
		}
	}
	h.publishAudit(ctx, audit.Entry{Kind: audit.KindRegister, ActorID: u.ID, ActorName: u.Username, SubjectID: u.ID, SubjectName: u.Username})
	rsp.Id, rsp.Username = u.ID, u.Username
	return nil
}

// newUser makes an account; without a password (an invitation) nothing
// signs in to it until one is set.
func (h *Handler) newUser(ctx context.Context, name, password string, roles []string) (*User, error) {
	hash := ""
	if password != "" {
		var err error
		if hash, err = hashPassword(ctx, password); err != nil {
			return nil, err
		}
	}
	now := h.now().UTC()
	return &User{ID: uuid.NewString(), Username: name, PasswordHash: hash, Roles: roles, CreatedAt: now, UpdatedAt: now}, nil
}

// Login checks the password and opens a session. Failed logins are counted
// (limits.go): per device for a device that presents its device token, else
// per account and address, per address and per account; past a limit the
// login is refused, 429 user.locked, before any password work. Attempts
// that pass are rate limited (rate.go, 429 user.rate_limited). Audited: a
// success, a failure (wrong password, unknown name, disabled account) and
// the failure that locks a counter; not the refusals (the lockout entry
// stands for them, and they cost an attacker nothing). A success returns a
// device token for the next login from this device.
func (h *Handler) Login(ctx context.Context, req *pb.LoginRequest, rsp *pb.LoginResponse) error {
	// Malformed input can never match an account: same answer, same cost.
	var u *User
	if ValidUsername(req.Username) == nil {
		var err error
		if u, err = h.repo.ByName(ctx, req.Username); err != nil && !errors.Is(err, ErrNotFound) {
			return rpcError(err)
		}
	}
	g, err := h.guardLogin(ctx, req.Username, req.ClientAddr, req.DeviceToken, u)
	if err != nil {
		return rpcError(err)
	}
	if err := h.takeRate(ctx, h.loginBuckets(g)); err != nil {
		return rpcError(err)
	}
	ok, err := passwordMatches(ctx, u, req.Password)
	if err != nil {
		return rpcError(err)
	}
	detail, refusal, amr := "wrong password", ErrBadCredentials, []string{"pwd"}
	if ok && u.TOTPSecret != "" {
		// Neither counted nor reset without a code or a passkey: they
		// decide.
		switch {
		case req.PasskeyCeremony != "":
			if ok, detail, err = h.passkeyFactor(ctx, u, req.PasskeyCeremony, req.Passkey); err != nil {
				return rpcError(err)
			}
			refusal, amr = ErrPasskeyInvalid, append(amr, "hwk")
		case strings.TrimSpace(req.Otp) == "":
			return rpcError(ErrMFARequired)
		default:
			if ok, err = h.checkSecondFactor(ctx, u, req.Otp); err != nil {
				return rpcError(err)
			}
			detail, refusal, amr = "wrong second-factor code", ErrBadCode, append(amr, "otp")
		}
	}
	if ok, err = h.settleGuarded(ctx, g, u, ok, detail); err != nil {
		return rpcError(err)
	}
	if !ok {
		return rpcError(refusal)
	}
	if err := h.admit(ctx, g, u); err != nil {
		return err
	}
	if u.MustChangePassword {
		if err := h.changeAtLogin(ctx, u, req.Password, req.NewPassword); err != nil {
			return rpcError(err)
		}
	}
	return h.openSession(ctx, g, u, req.UserAgent, amr, "", rsp)
}

// admit refuses a verified login of u to a disabled account, or one whose
// address must be verified first (audited as failed logins).
func (h *Handler) admit(ctx context.Context, g *loginGuard, u *User) error {
	if u.Disabled {
		h.publishAudit(ctx, audit.Entry{Kind: audit.KindLoginFailed, SubjectID: u.ID, SubjectName: g.username, ClientAddr: g.addr, Detail: "account disabled"})
		return rpcError(ErrDisabled)
	}
	// Admins are exempt, so that turning the rule on never locks the
	// first admin (who has no address) out.
	if h.cfg.Current().Accounts.RequireVerifiedEmail && !u.EmailVerified && !pauth.IsAdmin(u.Roles) {
		h.publishAudit(ctx, audit.Entry{Kind: audit.KindLoginFailed, SubjectID: u.ID, SubjectName: g.username, ClientAddr: g.addr, Detail: "email not verified"})
		return rpcError(ErrEmailUnverified)
	}
	return nil
}

// openSession opens a session of u, admitted, signed in by the methods amr
// (RFC 8176: pwd, otp, hwk), audits the login (with detail) and answers its
// token and a device token for the next login.
func (h *Handler) openSession(ctx context.Context, g *loginGuard, u *User, userAgent string, amr []string, detail string, rsp *pb.LoginResponse) error {
	sid, err := newSessionID()
	if err != nil {
		return rpcError(err)
	}
	set := h.cfg.Current().Auth
	now := h.now().UTC()
	s := &Session{
		ID: sid, UserID: u.ID, CreatedAt: now, LastSeen: now, ExpiresAt: now.Add(set.MaxAge()),
		ClientAddr: g.addr, UserAgent: truncate(userAgent, 256), AMR: amr,
	}
	if err := h.repo.CreateSession(ctx, s); err != nil {
		return rpcError(err)
	}
	if err := h.repo.RecordLogin(ctx, u, now); err != nil {
		return rpcError(err)
	}
	tok, err := h.issue(u, s, set.Expire())
	if err != nil {
		return rpcError(err)
	}
	h.publishAudit(ctx, audit.Entry{Kind: audit.KindLogin, ActorID: u.ID, ActorName: u.Username, SubjectID: u.ID, SubjectName: u.Username, ClientAddr: s.ClientAddr, Detail: detail})
	device := g.device
	if device == "" {
		device = newDeviceID()
	}
	dev, devExp := h.issueDevice(u.ID, device)
	rsp.Token, rsp.ExpiresAt, rsp.SessionId = tok.AccessToken, tok.Expiry.Unix(), sid
	if dev != "" {
		rsp.DeviceToken, rsp.DeviceExpiresAt = dev, devExp.Unix()
	}
	return nil
}

// checkGuarded checks password against u's hash (a dummy one when u is nil)
// and settles g's counters: a failure is counted and audited (with detail,
// and a lockout entry when it reached a limit). A lockout reached meanwhile
// by concurrent attempts refuses this one too, right or wrong. An error
// means no verdict (ErrBusy: nothing counted) or a lockout.
func (h *Handler) checkGuarded(ctx context.Context, g *loginGuard, u *User, password, detail string) (bool, error) {
	ok, err := passwordMatches(ctx, u, password)
	if err != nil {
		return false, err
	}
	return h.settleGuarded(ctx, g, u, ok, detail)
}

// passwordMatches checks password against u's hash (a dummy one when u is
// nil, so that an unknown name costs the same).
func passwordMatches(ctx context.Context, u *User, password string) (bool, error) {
	hash := ""
	if u != nil {
		hash = u.PasswordHash
	}
	if ValidPassword(password) != nil {
		return false, nil
	}
	return checkPassword(ctx, password, hash)
}

// settleGuarded settles g's counters with the verdict ok, as checkGuarded
// describes.
func (h *Handler) settleGuarded(ctx context.Context, g *loginGuard, u *User, ok bool, detail string) (bool, error) {
	reached, err := h.settleLogin(ctx, g, ok)
	if err != nil || ok {
		return ok, err
	}
	failed := audit.Entry{Kind: audit.KindLoginFailed, SubjectName: g.username, ClientAddr: g.addr, Detail: detail}
	if u != nil {
		failed.SubjectID = u.ID
	} else {
		failed.Detail = "unknown user"
	}
	h.publishAudit(ctx, failed)
	if len(reached) > 0 {
		failed.Kind, failed.Detail = audit.KindLockout, lockoutDetail(g.set, reached)
		h.publishAudit(ctx, failed)
	}
	return false, nil
}

// issue mints an access token for the session, living ttl but never past the
// session's end.
func (h *Handler) issue(u *User, s *Session, ttl time.Duration) (*auth.Token, error) {
	acc, err := h.auth.Generate(u.ID, auth.WithType("user"), auth.WithScopes(u.Roles...), auth.WithMetadata(map[string]string{
		pauth.MetaUsername:  u.Username,
		pauth.MetaSession:   s.ID,
		pauth.MetaSessionEx: strconv.FormatInt(s.ExpiresAt.Unix(), 10),
	}))
	if err != nil {
		return nil, err
	}
	return h.auth.Token(auth.WithCredentials(acc.ID, acc.Secret), auth.WithExpiry(ttl))
}

// Logout ends the caller's session.
func (h *Handler) Logout(ctx context.Context, req *pb.LogoutRequest, rsp *pb.LogoutResponse) error {
	acc, err := account(ctx)
	if err != nil {
		return err
	}
	if err := h.endSession(ctx, acc.ID, acc.Metadata[pauth.MetaSession]); err != nil {
		return err
	}
	name := acc.Metadata[pauth.MetaUsername]
	h.publishAudit(ctx, audit.Entry{Kind: audit.KindLogout, ActorID: acc.ID, ActorName: name, SubjectID: acc.ID, SubjectName: name})
	return nil
}

// endSession deletes a session and tells every gateway.
func (h *Handler) endSession(ctx context.Context, userID, sid string) error {
	ev := &pb.SessionRevoked{SessionId: sid, UserId: userID, At: h.now().Unix()}
	m := event(TopicSessionRevoked, ev)
	// The event is kept in the same atomic write as the deletion.
	if err := h.repo.DeleteSession(ctx, userID, sid, h.outbox.Ops(m)...); err != nil {
		return rpcError(err)
	}
	if h.sessionEnded != nil {
		h.sessionEnded(userID, sid)
	}
	if err := h.announce(ctx, h.revoked, m, ev); err != nil {
		h.log.Warn("session.revoked event not published now; the outbox relays it (without one, gateways notice at cache expiry)", "session", sid, "err", err)
	}
	return nil
}

// Info returns the caller's account and what they may do now; for an API
// key, the key's id rather than a session.
func (h *Handler) Info(ctx context.Context, req *pb.InfoRequest, rsp *pb.InfoResponse) error {
	acc, err := caller(ctx)
	if err != nil {
		return err
	}
	rsp.Permissions = endpoint.OrEmpty(pauth.GrantFromContext(ctx).Permissions)
	if kid := acc.Metadata[pauth.MetaKey]; kid != "" {
		u, err := h.repo.Get(ctx, acc.ID)
		if err != nil {
			return rpcError(err)
		}
		rsp.Id, rsp.Username, rsp.Roles, rsp.CreatedAt, rsp.KeyId = u.ID, u.Username, u.Roles, u.CreatedAt.Unix(), kid
		return nil
	}
	s, u, err := h.sessionAndUser(ctx, acc)
	if err != nil {
		return rpcError(err)
	}
	h.touch(ctx, s)
	rsp.Id, rsp.Username, rsp.Roles, rsp.CreatedAt = u.ID, u.Username, u.Roles, u.CreatedAt.Unix()
	rsp.SessionId, rsp.SessionExpiresAt = s.ID, s.ExpiresAt.Unix()
	rsp.Email, rsp.EmailVerified, rsp.DisplayName = u.Email, u.EmailVerified, u.DisplayName
	rsp.TotpEnabled, rsp.Language = u.TOTPSecret != "", u.Lang
	rsp.TwoFactorRequired = len(h.effectiveRoles(u)) < len(u.Roles)
	return nil
}

// ChangePassword replaces the caller's password and ends their other
// sessions. Its check of the current password is a login as far as the
// failure counters go (limits.go): a wrong one is counted for the account
// and the client address (or the trusted device) and audited, and while
// they are locked the check is refused, 429 user.locked.
func (h *Handler) ChangePassword(ctx context.Context, req *pb.ChangePasswordRequest, rsp *pb.ChangePasswordResponse) error {
	acc, err := account(ctx)
	if err != nil {
		return err
	}
	if err := ValidPassword(req.NewPassword); err != nil {
		return rpcError(err)
	}
	u, err := h.repo.Get(ctx, acc.ID)
	if err != nil {
		return rpcError(err)
	}
	g, err := h.guardLogin(ctx, u.Username, pauth.ClientFromContext(ctx), req.DeviceToken, u)
	if err != nil {
		return rpcError(err)
	}
	if ok, err := h.checkGuarded(ctx, g, u, req.OldPassword, "wrong current password (password change)"); err != nil {
		return rpcError(err)
	} else if !ok {
		return rpcError(ErrWrongPassword)
	}
	if u.PasswordHash, err = hashPassword(ctx, req.NewPassword); err != nil {
		return rpcError(err)
	}
	u.UpdatedAt = h.now().UTC()
	if err := h.repo.Update(ctx, u); err != nil {
		return rpcError(err)
	}
	// A reset link mailed before the change no longer works.
	if err := h.repo.DropLinks(ctx, LinkReset, u.ID); err != nil {
		return rpcError(err)
	}
	ids, err := h.repo.SessionIDs(ctx, u.ID)
	if err != nil {
		return rpcError(err)
	}
	current := acc.Metadata[pauth.MetaSession]
	for _, sid := range ids {
		if sid == current {
			continue
		}
		if err := h.endSession(ctx, u.ID, sid); err != nil {
			return err
		}
		rsp.SessionsEnded++
	}
	h.publishAudit(ctx, audit.Entry{Kind: audit.KindPasswordChange, ActorID: u.ID, ActorName: u.Username, SubjectID: u.ID, SubjectName: u.Username,
		Detail: fmt.Sprintf("%d other sessions ended", rsp.SessionsEnded)})
	return nil
}

// Renew issues a fresh token for the caller's live session. The token lives
// auth.expireTime from now, cut at the session's end.
func (h *Handler) Renew(ctx context.Context, req *pb.RenewRequest, rsp *pb.RenewResponse) error {
	acc, err := account(ctx)
	if err != nil {
		return err
	}
	s, u, err := h.sessionAndUser(ctx, acc)
	if err != nil {
		return rpcError(err)
	}
	tok, err := h.issue(u, s, h.cfg.Current().Auth.Expire())
	if errors.Is(err, pauth.ErrExpired) {
		return rpcError(ErrSessionEnded)
	} else if err != nil {
		return rpcError(err)
	}
	rsp.Token, rsp.ExpiresAt = tok.AccessToken, tok.Expiry.Unix()
	return nil
}

// Health reports whether the store answers.
func (h *Handler) Health(ctx context.Context, req *pb.HealthRequest, rsp *pb.HealthResponse) error {
	if err := h.repo.Ping(ctx); err != nil {
		return rpcUnavailable(err)
	}
	rsp.Status = "ok"
	return nil
}

// Check implements auth.Checker on the local store. A token's session must
// exist and belong to the token's user, and the user must exist and be
// enabled; an API key is checkKey's. The grant is the user's roles as the
// store has them, and the permissions those roles give now. The handler's
// context carries the session and user it read (Info and Renew then make no
// store read of their own).
func (h *Handler) Check(ctx context.Context, tok string, acc *auth.Account) (context.Context, *auth.Account, pauth.Grant, error) {
	if acc == nil {
		return h.checkKey(ctx, tok)
	}
	// A disabled or deleted user's tokens end with the user.
	s, u, err := h.repo.SessionAndUser(ctx, acc.Metadata[pauth.MetaSession], acc.ID)
	if errors.Is(err, ErrSessionEnded) || errors.Is(err, ErrNotFound) {
		return ctx, nil, pauth.Grant{}, pauth.ErrSessionEnded
	} else if err != nil {
		return ctx, nil, pauth.Grant{}, rpcUnavailable(err)
	}
	if s.UserID != acc.ID || u.Disabled {
		return ctx, nil, pauth.Grant{}, pauth.ErrSessionEnded
	}
	return context.WithValue(ctx, checkedKey{}, checked{session: s, user: u}), acc, h.grant(h.effectiveRoles(u)), nil
}

// effectiveRoles are u's roles less those accounts.twoFactorRoles names,
// while u has no second factor.
func (h *Handler) effectiveRoles(u *User) []string {
	need := h.cfg.Current().Accounts.TwoFactorRoles
	if u.TOTPSecret != "" || len(need) == 0 {
		return u.Roles
	}
	out := make([]string, 0, len(u.Roles))
	for _, r := range u.Roles {
		if !slices.Contains(need, r) {
			out = append(out, r)
		}
	}
	return out
}

// grant is what roles allow under this instance's role definitions.
func (h *Handler) grant(roles []string) pauth.Grant {
	return pauth.Grant{Roles: roles, Permissions: permissionsOf(h.roles.current(), roles)}
}

// checkedKey is the context key of what Check read for a call.
type checkedKey struct{}

// checked is what Check read for a call.
type checked struct {
	session *Session
	user    *User
}

// sessionAndUser returns the caller's session and user: those Check read
// for this call, or read now.
func (h *Handler) sessionAndUser(ctx context.Context, acc *auth.Account) (*Session, *User, error) {
	sid := acc.Metadata[pauth.MetaSession]
	if l, ok := ctx.Value(checkedKey{}).(checked); ok && l.session.ID == sid && l.user.ID == acc.ID {
		return l.session, l.user, nil
	}
	return h.repo.SessionAndUser(ctx, sid, acc.ID)
}

// EnsureAdmin creates the first admin account, once per store: the store
// remembers that it did (Repo.ClaimBootstrap), so an admin deleted later is
// never made again, whatever PORTAL_ADMIN_PASSWORD says. A store that
// already has accounts but no such record (made before the record existed)
// had its first admin: it gets the record and no new account. It returns
// the password it generated, or "" when it generated none.
func (h *Handler) EnsureAdmin(ctx context.Context, password string) (created bool, generated string, err error) {
	if done, err := h.repo.Bootstrapped(ctx); err != nil || done {
		return false, "", err
	}
	if has, err := h.repo.AnyUser(ctx); err != nil {
		return false, "", err
	} else if has {
		_, err := h.repo.ClaimBootstrap(ctx, h.now())
		return false, "", err
	}
	if password == "" {
		b := make([]byte, 18)
		if _, err := rand.Read(b); err != nil {
			return false, "", err
		}
		password = base64.RawURLEncoding.EncodeToString(b)
		generated = password
	}
	if err := ValidPassword(password); err != nil {
		return false, "", fmt.Errorf("PORTAL_ADMIN_PASSWORD: %w", err)
	}
	u, err := h.newUser(ctx, "admin", password, []string{pauth.RoleAdmin, pauth.RoleUser})
	if err != nil {
		return false, "", err
	}
	// Claim first: of instances starting together on one store, one makes
	// the admin. Should the account then fail to be written, the claim is
	// dropped so that the next start tries again.
	if won, err := h.repo.ClaimBootstrap(ctx, h.now()); err != nil || !won {
		return false, "", err
	}
	if err := h.repo.Create(ctx, u); errors.Is(err, ErrExists) {
		return false, "", nil
	} else if err != nil {
		h.repo.DropBootstrap(ctx)
		return false, "", err
	}
	return true, generated, nil
}

// account is the caller of a call that needs a signed-in session: an API
// key is refused.
func account(ctx context.Context) (*auth.Account, error) {
	acc, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if acc.Metadata[pauth.MetaSession] == "" {
		return nil, rpcError(ErrSessionOnly)
	}
	return acc, nil
}

// signedInUser is account's caller (signed in with a session) and their
// record; its errors are RPC errors.
func (h *Handler) signedInUser(ctx context.Context) (*auth.Account, *User, error) {
	acc, err := account(ctx)
	if err != nil {
		return nil, nil, err
	}
	u, err := h.repo.Get(ctx, acc.ID)
	if err != nil {
		return nil, nil, rpcError(err)
	}
	return acc, u, nil
}

// caller is the caller of a call, with a session or an API key.
func caller(ctx context.Context) (*auth.Account, error) {
	acc, ok := auth.AccountFromContext(ctx)
	if !ok || (acc.Metadata[pauth.MetaSession] == "" && acc.Metadata[pauth.MetaKey] == "") {
		return nil, rpcError(ErrSessionEnded)
	}
	return acc, nil
}

func newSessionID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) > n {
		return string(r[:n])
	}
	return s
}

// nameOf returns a user's name, or "" when it cannot be read (for the audit
// log, which should not fail a request).
func (h *Handler) nameOf(ctx context.Context, id string) string {
	if u, err := h.repo.Get(ctx, id); err == nil {
		return u.Username
	}
	return ""
}

// record publishes an audit entry for an action an account took.
func (h *Handler) record(ctx context.Context, actor *auth.Account, kind audit.Kind, subjectID, subjectName, detail string) {
	h.publishAudit(ctx, audit.Entry{
		Kind: kind, ActorID: actor.ID, ActorName: actor.Metadata[pauth.MetaUsername],
		SubjectID: subjectID, SubjectName: subjectName, Detail: detail,
	})
}
