package user

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"time"

	"github.com/portal-go/portal/internal/audit"
	"github.com/portal-go/portal/internal/mail"
	pb "github.com/portal-go/portal/proto/user"
)

// Accounts that admins manage: made by an admin (with a password or an
// invitation), a password reset for someone else, a change required.

// InviteLinkTTL is how long an invitation works.
const InviteLinkTTL = 7 * 24 * time.Hour

// ErrPasswordChangeRequired: the account must choose a new password; the
// login must carry new_password.
var ErrPasswordChangeRequired = errors.New("user: choose a new password to sign in")

// ErrSamePassword: the new password is the one it replaces.
var ErrSamePassword = errors.New("user: the new password must differ from the old one")

// CreateUser makes an account for an admin: with a password, or without one
// an invitation mailed to its address (a link to choose one, 7 days).
func (a *Accounts) CreateUser(ctx context.Context, req *pb.CreateUserRequest, rsp *pb.CreateUserResponse) error {
	h := a.h
	acc, err := caller(ctx)
	if err != nil {
		return err
	}
	if err := ValidUsername(req.Username); err != nil {
		return rpcError(err)
	}
	if req.Password != "" {
		if err := ValidPassword(req.Password); err != nil {
			return rpcError(err)
		}
	}
	email := strings.TrimSpace(req.Email)
	switch {
	case email != "":
		if email, err = normalEmail(email); err != nil {
			return rpcError(err)
		}
	case req.Password == "":
		return rpcError(ErrNoEmail) // nowhere to send the invitation
	case h.cfg.Current().Accounts.RequireEmail:
		return rpcError(ErrEmailRequired)
	}
	roles, err := cleanRoles(h.roles.current(), req.Roles)
	if err != nil {
		return rpcError(err)
	}
	if _, err := h.repo.ByName(ctx, req.Username); err == nil {
		return rpcError(ErrExists)
	}
	u, err := h.newUser(ctx, req.Username, req.Password, roles)
	if err != nil {
		return rpcError(err)
	}
	u.Email = email
	if email != "" {
		if err := h.repo.ClaimEmail(ctx, email, u.ID); err != nil {
			return rpcError(err)
		}
	}
	if err := h.repo.Create(ctx, u); err != nil {
		_ = h.repo.ReleaseEmail(ctx, email, u.ID)
		return rpcError(err)
	}
	detail := "with a password"
	switch {
	case req.Password == "":
		if err := h.sendLink(ctx, u, LinkReset, email, InviteLinkTTL, mail.KindInvite, "/password/reset", req.Lang, mail.Valid7d); err != nil {
			return rpcError(err)
		}
		detail, rsp.Invited = "invited at "+email, true
	case email != "":
		if err := h.sendVerification(ctx, u, email, req.Lang); err != nil {
			h.log.Warn("verification mail not queued", "user", u.Username, "err", err)
		}
	}
	h.record(ctx, acc, audit.KindRegister, u.ID, u.Username, "created by an admin, "+detail+", roles "+strings.Join(roles, ","))
	rsp.Id, rsp.Username = u.ID, u.Username
	return nil
}

// ResetUserPassword resets another account's password for an admin: a
// mailed link, or a generated password the user must change at the next
// sign-in. The account's sessions end either way.
func (a *Accounts) ResetUserPassword(ctx context.Context, req *pb.ResetUserPasswordRequest, rsp *pb.ResetUserPasswordResponse) error {
	h := a.h
	acc, err := caller(ctx)
	if err != nil {
		return err
	}
	u, err := h.repo.Get(ctx, req.UserId)
	if err != nil {
		return rpcError(err)
	}
	detail := "a reset link mailed by an admin"
	if req.Temporary {
		if rsp.TemporaryPassword, err = h.repo.setTemporaryPassword(ctx, u, h.now()); err != nil {
			return rpcError(err)
		}
		detail = "a temporary password set by an admin"
	} else {
		if u.Email == "" {
			return rpcError(ErrNoEmail)
		}
		if err := h.sendLink(ctx, u, LinkReset, u.Email, ResetLinkTTL, mail.KindReset, "/password/reset", req.Lang, mail.Valid30m); err != nil {
			return rpcError(err)
		}
		rsp.Mailed = true
	}
	if rsp.SessionsEnded, err = h.endAll(ctx, u.ID); err != nil {
		return err
	}
	h.record(ctx, acc, audit.KindPasswordReset, u.ID, u.Username, detail)
	return nil
}

// RequirePasswordChange makes the account choose a new password at its next
// sign-in, and ends its sessions so that the next sign-in is now.
func (a *Accounts) RequirePasswordChange(ctx context.Context, req *pb.RequirePasswordChangeRequest, rsp *pb.RequirePasswordChangeResponse) error {
	h := a.h
	acc, err := caller(ctx)
	if err != nil {
		return err
	}
	u, err := h.repo.Get(ctx, req.UserId)
	if err != nil {
		return rpcError(err)
	}
	u.MustChangePassword, u.UpdatedAt = true, h.now().UTC()
	if err := h.repo.Update(ctx, u); err != nil {
		return rpcError(err)
	}
	if rsp.SessionsEnded, err = h.endAll(ctx, u.ID); err != nil {
		return err
	}
	h.record(ctx, acc, audit.KindPasswordChange, u.ID, u.Username, "a change required by an admin at the next sign-in")
	return nil
}

// changeAtLogin replaces the password of u, whose password was just
// checked and must be changed, with next: the login then goes on.
func (h *Handler) changeAtLogin(ctx context.Context, u *User, old, next string) error {
	if next == "" {
		return ErrPasswordChangeRequired
	}
	if err := ValidPassword(next); err != nil {
		return err
	}
	if next == old {
		return ErrSamePassword
	}
	hash, err := hashPassword(ctx, next)
	if err != nil {
		return err
	}
	u.PasswordHash, u.MustChangePassword, u.UpdatedAt = hash, false, h.now().UTC()
	if err := h.repo.Update(ctx, u); err != nil {
		return err
	}
	if err := h.repo.DropLinks(ctx, LinkReset, u.ID); err != nil {
		return err
	}
	h.publishAudit(ctx, audit.Entry{Kind: audit.KindPasswordChange, ActorID: u.ID, ActorName: u.Username, SubjectID: u.ID, SubjectName: u.Username, Detail: "changed at sign-in, as required"})
	return nil
}

// setTemporaryPassword gives u a generated password that must be changed
// at the next sign-in, ends a pending reset link, and returns it.
func (r *Repo) setTemporaryPassword(ctx context.Context, u *User, now time.Time) (string, error) {
	pw, err := temporaryPassword()
	if err != nil {
		return "", err
	}
	if u.PasswordHash, err = hashPassword(ctx, pw); err != nil {
		return "", err
	}
	u.MustChangePassword, u.UpdatedAt = true, now.UTC()
	if err := r.Update(ctx, u); err != nil {
		return "", err
	}
	if err := r.DropLinks(ctx, LinkReset, u.ID); err != nil {
		return "", err
	}
	return pw, nil
}

// ResetPasswordInStore is `portal admin reset-password` on a store no
// running service holds: it gives the account named username a temporary
// password that must be changed at the next sign-in, enables the account,
// and deletes its sessions. It returns the audit entry the caller records
// (no service runs to record it). A gateway that cached one of the sessions
// lets it pass until that entry expires (no event can be sent from here).
func ResetPasswordInStore(ctx context.Context, r *Repo, username string) (password string, sessionsEnded int, entry audit.Entry, err error) {
	u, err := r.ByName(ctx, username)
	if err != nil {
		return "", 0, entry, err
	}
	u.Disabled = false
	if password, err = r.setTemporaryPassword(ctx, u, time.Now()); err != nil {
		return "", 0, entry, err
	}
	ids, err := r.SessionIDs(ctx, u.ID)
	if err != nil {
		return "", 0, entry, err
	}
	for _, sid := range ids {
		if err := r.DeleteSession(ctx, u.ID, sid); err != nil {
			return "", 0, entry, err
		}
	}
	return password, len(ids), commandLineReset(u), nil
}

// ResetPasswordFromCommandLine is `portal admin reset-password` served by
// the running user service (over its admin socket, because the command
// cannot open a store the service holds): as ResetPasswordInStore, but the
// sessions end as any other (every gateway hears it at once) and the reset
// is audited, done by the command line.
func (h *Handler) ResetPasswordFromCommandLine(ctx context.Context, username string) (password string, sessionsEnded int32, err error) {
	u, err := h.repo.ByName(ctx, username)
	if err != nil {
		return "", 0, err
	}
	u.Disabled = false
	if password, err = h.repo.setTemporaryPassword(ctx, u, h.now()); err != nil {
		return "", 0, err
	}
	h.publishChanged(ctx, u.ID)
	if sessionsEnded, err = h.endAll(ctx, u.ID); err != nil {
		return "", 0, err
	}
	h.publishAudit(ctx, commandLineReset(u))
	return password, sessionsEnded, nil
}

// CommandLine is the actor name of what `portal admin` does.
const CommandLine = "command line"

// commandLineReset is the audit entry of `portal admin reset-password`.
func commandLineReset(u *User) audit.Entry {
	return audit.Entry{Kind: audit.KindPasswordReset, ActorName: CommandLine, SubjectID: u.ID, SubjectName: u.Username,
		Detail: "a temporary password set on the command line (portal admin reset-password); account enabled"}
}

// temporaryPassword is 18 random bytes, base64url: 24 characters.
func temporaryPassword() (string, error) {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
