package user

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"image/png"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/portal-go/portal/internal/audit"
	pauth "github.com/portal-go/portal/internal/auth"
	pb "github.com/portal-go/portal/proto/user"
)

// Two factors: TOTP (RFC 6238, 30 s, 6 digits, one step of skew) and ten
// single-use recovery codes, stored as SHA-256 hashes.

// Errors of the second factor.
var (
	// ErrMFARequired: the account has a second factor and the login
	// carried no code.
	ErrMFARequired = errors.New("user: enter the code of your authenticator app, or a recovery code")
	// ErrBadCode: a TOTP or recovery code that does not match (or was used).
	ErrBadCode = errors.New("user: the code is wrong, or was used already")
	// ErrNoEnrolment: nothing to confirm; start with POST /me/totp.
	ErrNoEnrolment = errors.New("user: no two-factor enrolment is pending")
)

const (
	totpIssuer      = "Portal"
	totpPeriod      = 30
	recoveryCodeLen = 10
	recoveryCodes   = 10
)

var totpOpts = totp.ValidateOpts{Period: totpPeriod, Skew: 0, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// totpStep returns the time step whose code is code, newer than after,
// within one step of now; 0 when none.
func totpStep(secret, code string, now time.Time, after int64) int64 {
	if len(code) != 6 || secret == "" {
		return 0
	}
	cur := now.Unix() / totpPeriod
	for _, step := range []int64{cur - 1, cur, cur + 1} {
		if step <= after {
			continue
		}
		want, err := totp.GenerateCodeCustom(secret, time.Unix(step*totpPeriod, 0), totpOpts)
		if err == nil && subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return step
		}
	}
	return 0
}

func hashCode(code string) string {
	sum := sha256.Sum256([]byte(strings.ToUpper(strings.ReplaceAll(code, "-", ""))))
	return hex.EncodeToString(sum[:])
}

// newRecoveryCodes returns ten random codes (50 bits each, base32, shown as
// xxxxx-xxxxx) and their hashes.
func newRecoveryCodes() (codes, hashes []string, err error) {
	for range recoveryCodes {
		b := make([]byte, 7)
		if _, err := rand.Read(b); err != nil {
			return nil, nil, err
		}
		c := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)[:recoveryCodeLen]
		codes = append(codes, strings.ToLower(c[:5]+"-"+c[5:]))
		hashes = append(hashes, hashCode(c))
	}
	return codes, hashes, nil
}

// secondFactor checks code against u's TOTP key secret (a step newer than
// the last one used: no replay inside the window) or its recovery codes
// (each used once), and records the use in u (the caller stores u).
func secondFactor(u *User, secret, code string, now time.Time) bool {
	code = strings.TrimSpace(code)
	if step := totpStep(secret, code, now, u.TOTPLastStep); step != 0 {
		u.TOTPLastStep = step
		return true
	}
	h := hashCode(code)
	for i, rc := range u.RecoveryHashes {
		if subtle.ConstantTimeCompare([]byte(rc), []byte(h)) == 1 {
			u.RecoveryHashes = append(u.RecoveryHashes[:i:i], u.RecoveryHashes[i+1:]...)
			return true
		}
	}
	return false
}

// checkSecondFactor checks a login's code for u and records its use: a
// TOTP step or a recovery code is claimed atomically, so that of concurrent
// logins with one code exactly one passes. A key stored in the clear is
// sealed then; one that does not open leaves the recovery codes.
func (h *Handler) checkSecondFactor(ctx context.Context, u *User, code string) (bool, error) {
	before := len(u.RecoveryHashes)
	secret, clear, err := h.unseal(u.ID, u.TOTPSecret)
	if err != nil {
		h.log.Warn("two-factor key not read: only recovery codes sign in", "user", u.Username, "err", err)
	}
	if !secondFactor(u, secret, code, h.now()) {
		return false, nil
	}
	claim := keyFactorUsed + u.ID + "/step/" + strconv.FormatInt(u.TOTPLastStep, 10)
	ttl := 3 * totpPeriod * time.Second
	if len(u.RecoveryHashes) < before {
		claim, ttl = keyFactorUsed+u.ID+"/code/"+hashCode(code), 365*24*time.Hour
	}
	won, err := h.repo.claimOnce(ctx, claim, ttl)
	if err != nil || !won {
		return false, err
	}
	if clear && secret != "" {
		if u.TOTPSecret, err = h.seal(u.ID, secret); err != nil {
			return false, err
		}
	}
	u.UpdatedAt = h.now().UTC()
	return true, h.repo.Update(ctx, u)
}

// keyFactorUsed marks a TOTP step or recovery code used:
// factorused/<user id>/step/<n> or .../code/<hash>.
const keyFactorUsed = "factorused/"

// BeginTOTP makes a new secret for the caller, pending until confirmed; an
// account with TOTP in force keeps it until then.
func (a *Accounts) BeginTOTP(ctx context.Context, req *pb.BeginTOTPRequest, rsp *pb.BeginTOTPResponse) error {
	h := a.h
	_, u, err := h.signedInUser(ctx)
	if err != nil {
		return err
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: totpIssuer, AccountName: u.Username, Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return rpcError(err)
	}
	if u.TOTPPending, err = h.seal(u.ID, key.Secret()); err != nil {
		return rpcError(err)
	}
	u.UpdatedAt = h.now().UTC()
	if err := h.repo.Update(ctx, u); err != nil {
		return rpcError(err)
	}
	rsp.Secret, rsp.Url = key.Secret(), key.URL()
	return nil
}

// TOTPQRCode renders the caller's pending enrolment as a PNG QR code, here
// on the server: no script, no third party sees the secret.
func (a *Accounts) TOTPQRCode(ctx context.Context, req *pb.TOTPQRCodeRequest, rsp *pb.TOTPQRCodeResponse) error {
	acc, err := account(ctx)
	if err != nil {
		return err
	}
	u, err := a.h.repo.Get(ctx, acc.ID)
	if err != nil {
		return rpcError(err)
	}
	if u.TOTPPending == "" {
		return rpcError(ErrNoEnrolment)
	}
	pending, _, err := a.h.unseal(u.ID, u.TOTPPending)
	if err != nil {
		return rpcError(err)
	}
	key, err := otp.NewKeyFromURL(totpURL(u.Username, pending))
	if err != nil {
		return rpcError(err)
	}
	img, err := key.Image(256, 256)
	if err != nil {
		return rpcError(err)
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return rpcError(err)
	}
	rsp.Png = b.Bytes()
	return nil
}

// totpURL is the otpauth URL of a secret, as totp.Generate writes it.
func totpURL(username, secret string) string {
	key, _ := totp.Generate(totp.GenerateOpts{Issuer: totpIssuer, AccountName: username, Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1, Secret: mustDecode(secret)})
	return key.URL()
}

func mustDecode(secret string) []byte {
	b, _ := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret)
	return b
}

// ConfirmTOTP puts the pending secret in force when code matches it, and
// returns new recovery codes (the old ones stop working).
func (a *Accounts) ConfirmTOTP(ctx context.Context, req *pb.ConfirmTOTPRequest, rsp *pb.ConfirmTOTPResponse) error {
	h := a.h
	_, u, err := h.signedInUser(ctx)
	if err != nil {
		return err
	}
	if u.TOTPPending == "" {
		return rpcError(ErrNoEnrolment)
	}
	pending, _, err := h.unseal(u.ID, u.TOTPPending)
	if err != nil {
		return rpcError(err)
	}
	step := totpStep(pending, strings.TrimSpace(req.Code), h.now(), 0)
	if step == 0 {
		return rpcError(ErrBadCode)
	}
	sealed, err := h.seal(u.ID, pending)
	if err != nil {
		return rpcError(err)
	}
	codes, hashes, err := newRecoveryCodes()
	if err != nil {
		return rpcError(err)
	}
	u.TOTPSecret, u.TOTPPending, u.TOTPLastStep, u.RecoveryHashes = sealed, "", step, hashes
	u.UpdatedAt = h.now().UTC()
	if err := h.repo.Update(ctx, u); err != nil {
		return rpcError(err)
	}
	h.publishChanged(ctx, u.ID)
	h.publishAudit(ctx, audit.Entry{Kind: audit.KindFactorsChange, ActorID: u.ID, ActorName: u.Username, SubjectID: u.ID, SubjectName: u.Username, Detail: "TOTP enrolled; 10 recovery codes made"})
	rsp.RecoveryCodes = codes
	return nil
}

// ResetFactors removes an account's second factors for an admin (a lost
// phone): the next sign-in needs the password only.
func (a *Accounts) ResetFactors(ctx context.Context, req *pb.ResetFactorsRequest, rsp *pb.ResetFactorsResponse) error {
	h := a.h
	acc, err := caller(ctx)
	if err != nil {
		return err
	}
	u, err := h.repo.Get(ctx, req.UserId)
	if err != nil {
		return rpcError(err)
	}
	u.TOTPSecret, u.TOTPPending, u.TOTPLastStep, u.RecoveryHashes = "", "", 0, nil
	u.UpdatedAt = h.now().UTC()
	if err := h.repo.Update(ctx, u); err != nil {
		return rpcError(err)
	}
	h.publishChanged(ctx, u.ID)
	h.record(ctx, acc, audit.KindFactorsChange, u.ID, u.Username, "second factors removed by an admin")
	return nil
}

// Errors of turning one's own second factor off.
var (
	// ErrTOTPOff: the account has no TOTP in force.
	ErrTOTPOff = errors.New("user: two-factor sign-in is not on")
	// ErrTwoFactorNeeded: a role of the account counts only with a second
	// factor (accounts.twoFactorRoles), so it cannot be turned off.
	ErrTwoFactorNeeded = errors.New("user: a role of yours requires two-factor sign-in: it cannot be turned off (an admin can remove it)")
)

// DisableTOTP turns the caller's TOTP off: it needs their password (a wrong
// one counts as a failed login, as at a password change) and a current code
// or recovery code (a wrong one counts too), and is refused while a role of
// theirs needs two factors. Their recovery codes go with it.
func (a *Accounts) DisableTOTP(ctx context.Context, req *pb.DisableTOTPRequest, rsp *pb.DisableTOTPResponse) error {
	h := a.h
	_, u, err := h.signedInUser(ctx)
	if err != nil {
		return err
	}
	if u.TOTPSecret == "" {
		return rpcError(ErrTOTPOff)
	}
	for _, r := range h.cfg.Current().Accounts.TwoFactorRoles {
		if slices.Contains(u.Roles, r) {
			return rpcError(ErrTwoFactorNeeded)
		}
	}
	g, err := h.guardLogin(ctx, u.Username, pauth.ClientFromContext(ctx), req.DeviceToken, u)
	if err != nil {
		return rpcError(err)
	}
	pwOK, err := passwordMatches(ctx, u, req.Password)
	if err != nil {
		return rpcError(err)
	}
	ok, refusal, detail := false, ErrWrongPassword, "wrong current password (turning TOTP off)"
	if pwOK {
		refusal, detail = ErrBadCode, "wrong second-factor code (turning TOTP off)"
		if ok, err = h.checkSecondFactor(ctx, u, req.Code); err != nil {
			return rpcError(err)
		}
	}
	if ok, err = h.settleGuarded(ctx, g, u, ok, detail); err != nil {
		return rpcError(err)
	} else if !ok {
		return rpcError(refusal)
	}
	u.TOTPSecret, u.TOTPPending, u.TOTPLastStep, u.RecoveryHashes = "", "", 0, nil
	u.UpdatedAt = h.now().UTC()
	if err := h.repo.Update(ctx, u); err != nil {
		return rpcError(err)
	}
	h.publishChanged(ctx, u.ID)
	h.publishAudit(ctx, audit.Entry{Kind: audit.KindFactorsChange, ActorID: u.ID, ActorName: u.Username, SubjectID: u.ID, SubjectName: u.Username, Detail: "TOTP turned off by its owner"})
	return nil
}

// NewRecoveryCodes replaces the caller's recovery codes with ten new ones,
// given a current code (or one of the old recovery codes); the old ones
// stop working.
func (a *Accounts) NewRecoveryCodes(ctx context.Context, req *pb.NewRecoveryCodesRequest, rsp *pb.NewRecoveryCodesResponse) error {
	h := a.h
	_, u, err := h.signedInUser(ctx)
	if err != nil {
		return err
	}
	if u.TOTPSecret == "" {
		return rpcError(ErrTOTPOff)
	}
	if ok, err := h.checkSecondFactor(ctx, u, req.Code); err != nil {
		return rpcError(err)
	} else if !ok {
		return rpcError(ErrBadCode)
	}
	codes, hashes, err := newRecoveryCodes()
	if err != nil {
		return rpcError(err)
	}
	u.RecoveryHashes, u.UpdatedAt = hashes, h.now().UTC()
	if err := h.repo.Update(ctx, u); err != nil {
		return rpcError(err)
	}
	h.publishAudit(ctx, audit.Entry{Kind: audit.KindFactorsChange, ActorID: u.ID, ActorName: u.Username, SubjectID: u.ID, SubjectName: u.Username, Detail: "10 new recovery codes made; the old ones no longer work"})
	rsp.RecoveryCodes = codes
	return nil
}
