package user

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/portal-go/portal/internal/audit"
	"github.com/portal-go/portal/internal/mail"
	pb "github.com/portal-go/portal/proto/user"
)

// Accounts implements the Accounts RPC service (accounts.proto): profile,
// email verification, forgotten passwords and the mail outbox, on the
// user service's handler and store.
type Accounts struct {
	h *Handler
	// forgot bounds the password-reset requests being worked on in the
	// background; past it a request is dropped (and logged).
	forgot chan struct{}
}

// NewAccounts serves the Accounts calls with h, which must have an outbox
// (WithMail).
func NewAccounts(h *Handler) *Accounts {
	return &Accounts{h: h, forgot: make(chan struct{}, 64)}
}

// WithMail makes the handler queue mail in o, and returns it.
func (h *Handler) WithMail(o *mail.Outbox) *Handler {
	h.mail = o
	return h
}

// sendLink issues a link of kind for u to addr, and queues the message of
// mkind carrying it, in u's language (mailLang; lang is the request's).
// ttl and valid say how long it works. A request for the same link moments
// after the last is ErrTooSoon.
func (h *Handler) sendLink(ctx context.Context, u *User, kind LinkKind, addr string, ttl time.Duration, mkind mail.Kind, path, lang string, valid map[string]string) error {
	if h.mail == nil {
		return errors.New("user: no outbox to send mail with")
	}
	token, err := h.repo.IssueLink(ctx, kind, u.ID, addr, ttl, h.now().UTC())
	if err != nil {
		return err
	}
	link := h.cfg.Current().Accounts.Link(path, url.Values{"token": {token}})
	lang = h.mailLang(u, lang)
	m, err := mail.Compose(mkind, lang, addr, mail.Data{Username: u.Username, Link: link, Valid: valid[mail.Lang(lang)]})
	if err != nil {
		return err
	}
	return h.mail.Enqueue(ctx, m)
}

// sendVerification mails u a link that verifies addr.
func (h *Handler) sendVerification(ctx context.Context, u *User, addr, lang string) error {
	return h.sendLink(ctx, u, LinkVerify, addr, VerifyLinkTTL, mail.KindVerify, "/email/verify", lang, mail.Valid24h)
}

// ErrBadLanguage: a language Portal does not write in.
var ErrBadLanguage = errors.New("user: the language must be en or zh-CN")

// mailLang is the language of mail to u: the account's, else fallback (the
// language of the request that sends it), else the config's ui.language.
func (h *Handler) mailLang(u *User, fallback string) string {
	for _, l := range []string{u.Lang, fallback} {
		if l != "" && mail.Lang(l) == l {
			return l
		}
	}
	return h.cfg.Current().UI.Language
}

// normalEmail checks an address given by a client.
func normalEmail(addr string) (string, error) {
	a, err := mail.ValidAddress(addr)
	if err != nil {
		return "", ErrBadEmail
	}
	return a, nil
}

// UpdateProfile changes the caller's display name and/or email address. A
// new address is unverified until its link is followed; the old one is told.
func (a *Accounts) UpdateProfile(ctx context.Context, req *pb.UpdateProfileRequest, rsp *pb.Profile) error {
	h := a.h
	_, u, err := h.signedInUser(ctx)
	if err != nil {
		return err
	}
	var changed []string
	if req.DisplayName != nil && *req.DisplayName != u.DisplayName {
		name := strings.TrimSpace(*req.DisplayName)
		if err := validDisplayName(name); err != nil {
			return rpcError(err)
		}
		u.DisplayName = name
		changed = append(changed, "display name")
	}
	if req.Language != nil && *req.Language != u.Lang {
		if mail.Lang(*req.Language) != *req.Language {
			return rpcError(ErrBadLanguage)
		}
		u.Lang = *req.Language
		changed = append(changed, "language")
	}
	oldEmail := u.Email
	if req.Email != nil && !strings.EqualFold(strings.TrimSpace(*req.Email), u.Email) {
		addr := strings.TrimSpace(*req.Email)
		if addr == "" {
			if h.cfg.Current().Accounts.RequireEmail {
				return rpcError(ErrEmailRequired)
			}
		} else if addr, err = normalEmail(addr); err != nil {
			return rpcError(err)
		} else if err := h.repo.ClaimEmail(ctx, addr, u.ID); err != nil {
			return rpcError(err)
		}
		u.Email, u.EmailVerified = addr, false
		changed = append(changed, "email")
	}
	if len(changed) > 0 {
		u.UpdatedAt = h.now().UTC()
		if err := h.repo.Update(ctx, u); err != nil {
			return rpcError(err)
		}
	}
	if u.Email != oldEmail {
		if err := h.repo.ReleaseEmail(ctx, oldEmail, u.ID); err != nil {
			return rpcError(err)
		}
		// The old address's pending verification dies with it.
		if err := h.repo.DropLinks(ctx, LinkVerify, u.ID); err != nil {
			return rpcError(err)
		}
		if u.Email != "" {
			if err := h.sendVerification(ctx, u, u.Email, req.Lang); err != nil {
				return rpcError(err)
			}
		}
		if oldEmail != "" {
			if err := h.tell(ctx, mail.KindEmailChanged, h.mailLang(u, req.Lang), oldEmail, mail.Data{Username: u.Username, NewEmail: orNone(u.Email)}); err != nil {
				return rpcError(err)
			}
		}
	}
	if len(changed) > 0 {
		h.publishChanged(ctx, u.ID) // gateways drop what they cached of the profile
		h.publishAudit(ctx, audit.Entry{Kind: audit.KindProfileChange, ActorID: u.ID, ActorName: u.Username, SubjectID: u.ID, SubjectName: u.Username,
			Detail: "changed " + strings.Join(changed, " and ")})
	}
	rsp.Email, rsp.EmailVerified, rsp.DisplayName = u.Email, u.EmailVerified, u.DisplayName
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// tell queues a message without a link.
func (h *Handler) tell(ctx context.Context, kind mail.Kind, lang, to string, d mail.Data) error {
	m, err := mail.Compose(kind, lang, to, d)
	if err != nil {
		return err
	}
	return h.mail.Enqueue(ctx, m)
}

// SendVerification mails the caller a new link for their address.
func (a *Accounts) SendVerification(ctx context.Context, req *pb.SendVerificationRequest, rsp *pb.SendVerificationResponse) error {
	acc, err := account(ctx)
	if err != nil {
		return err
	}
	u, err := a.h.repo.Get(ctx, acc.ID)
	switch {
	case err != nil:
		return rpcError(err)
	case u.Email == "":
		return rpcError(ErrNoEmail)
	case u.EmailVerified:
		return rpcError(ErrEmailVerified)
	}
	if err := a.h.sendVerification(ctx, u, u.Email, req.Lang); err != nil {
		return rpcError(err)
	}
	return nil
}

// VerifyEmail follows a verification link: the address it was mailed to is
// verified, if it is still the account's.
func (a *Accounts) VerifyEmail(ctx context.Context, req *pb.TokenRequest, rsp *pb.VerifyEmailResponse) error {
	h := a.h
	l, err := h.repo.ConsumeLink(ctx, LinkVerify, req.Token, h.now())
	if err != nil {
		return rpcError(err)
	}
	u, err := h.repo.Get(ctx, l.UserID)
	if errors.Is(err, ErrNotFound) {
		return rpcError(ErrBadLink)
	} else if err != nil {
		return rpcError(err)
	}
	if !strings.EqualFold(u.Email, l.Email) {
		return rpcError(ErrBadLink) // the address changed since
	}
	if !u.EmailVerified {
		u.EmailVerified, u.UpdatedAt = true, h.now().UTC()
		if err := h.repo.Update(ctx, u); err != nil {
			return rpcError(err)
		}
		h.publishChanged(ctx, u.ID)
	}
	h.publishAudit(ctx, audit.Entry{Kind: audit.KindEmailVerified, ActorID: u.ID, ActorName: u.Username, SubjectID: u.ID, SubjectName: u.Username, Detail: u.Email})
	rsp.Username, rsp.Email = u.Username, u.Email
	return nil
}

// ForgotPassword answers at once, the same for every login: whether an
// account has that name or address, and whether mail goes out, is decided
// afterwards, in the background, so neither the answer nor its time tells.
func (a *Accounts) ForgotPassword(ctx context.Context, req *pb.ForgotPasswordRequest, rsp *pb.ForgotPasswordResponse) error {
	login := strings.TrimSpace(req.Login)
	if login == "" || len(login) > 254 {
		return nil
	}
	select {
	case a.forgot <- struct{}{}:
	default:
		a.h.log.Warn("password reset request dropped: too many at once")
		return nil
	}
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	go func() {
		defer func() { <-a.forgot }()
		defer cancel()
		if err := a.forgotPassword(bg, login, req.Lang); err != nil {
			a.h.log.Warn("password reset request failed", "err", err)
		}
	}()
	return nil
}

// forgotPassword mails a reset link to the account login names, if it has
// an address; nothing otherwise.
func (a *Accounts) forgotPassword(ctx context.Context, login, lang string) error {
	h := a.h
	var u *User
	var err error
	if strings.Contains(login, "@") {
		u, err = h.repo.ByEmail(ctx, login)
	} else if ValidUsername(login) == nil {
		u, err = h.repo.ByName(ctx, login)
	} else {
		return nil
	}
	if errors.Is(err, ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	if u.Email == "" || u.Disabled {
		return nil
	}
	err = h.sendLink(ctx, u, LinkReset, u.Email, ResetLinkTTL, mail.KindReset, "/password/reset", lang, mail.Valid30m)
	if errors.Is(err, ErrTooSoon) {
		return nil // the last link is still on its way
	} else if err != nil {
		return err
	}
	h.publishAudit(ctx, audit.Entry{Kind: audit.KindResetRequested, SubjectID: u.ID, SubjectName: u.Username})
	return nil
}

// ResetPassword follows a reset link: the password is set, every session
// of the account ends, and the address the link went to counts as verified.
func (a *Accounts) ResetPassword(ctx context.Context, req *pb.ResetPasswordRequest, rsp *pb.ResetPasswordResponse) error {
	h := a.h
	// A bad password does not use the link up.
	if err := ValidPassword(req.NewPassword); err != nil {
		return rpcError(err)
	}
	l, err := h.repo.ConsumeLink(ctx, LinkReset, req.Token, h.now())
	if err != nil {
		return rpcError(err)
	}
	u, err := h.repo.Get(ctx, l.UserID)
	if errors.Is(err, ErrNotFound) {
		return rpcError(ErrBadLink)
	} else if err != nil {
		return rpcError(err)
	}
	if u.Disabled {
		return rpcError(ErrDisabled)
	}
	if u.PasswordHash, err = hashPassword(ctx, req.NewPassword); err != nil {
		return rpcError(err)
	}
	if l.Email != "" && strings.EqualFold(l.Email, u.Email) {
		u.EmailVerified = true
	}
	u.MustChangePassword = false
	u.UpdatedAt = h.now().UTC()
	if err := h.repo.Update(ctx, u); err != nil {
		return rpcError(err)
	}
	n, err := h.endAll(ctx, u.ID)
	if err != nil {
		return err
	}
	h.publishAudit(ctx, audit.Entry{Kind: audit.KindPasswordReset, ActorID: u.ID, ActorName: u.Username, SubjectID: u.ID, SubjectName: u.Username,
		Detail: fmt.Sprintf("from a mailed link; %d sessions ended", n)})
	rsp.Username, rsp.SessionsEnded = u.Username, n
	return nil
}

// ListFailedMail returns what the outbox gave up, newest first.
func (a *Accounts) ListFailedMail(ctx context.Context, req *pb.ListFailedMailRequest, rsp *pb.ListFailedMailResponse) error {
	if a.h.mail == nil {
		return nil
	}
	list, err := a.h.mail.Failed(ctx)
	if err != nil {
		return rpcError(storeError("list", err))
	}
	for _, e := range list {
		rsp.Messages = append(rsp.Messages, &pb.FailedMail{
			Id: e.Message.ID, To: e.Message.To, Subject: e.Message.Subject, Kind: string(e.Message.Kind),
			Attempts: int32(e.Attempts), LastError: e.LastError, QueuedAt: e.Queued.Unix(),
		})
	}
	return nil
}
