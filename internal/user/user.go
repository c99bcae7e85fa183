// Package user is the accounts service: registration, passwords, sessions and
// the tokens that name them.
package user

import (
	"context"
	"errors"
	"regexp"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/alexedwards/argon2id"
)

// Sentinel errors, mapped to RPC errors once, in errors.go.
var (
	ErrNotFound       = errors.New("user: not found")
	ErrExists         = errors.New("user: username taken")
	ErrBadUsername    = errors.New("user: username must be 3-32 characters of letters, digits, '_', '.', '-'")
	ErrBadPassword    = errors.New("user: password must be 10-128 characters")
	ErrBadCredentials = errors.New("user: wrong username or password")
	ErrWrongPassword  = errors.New("user: the current password is wrong")
	ErrDisabled       = errors.New("user: account disabled")
	ErrSessionEnded   = errors.New("user: session ended")
	// ErrLocked: too many failed logins for the account or the client
	// address; waitError carries when to retry.
	ErrLocked = errors.New("user: too many failed logins")
	// ErrRateLimited: too many attempts to log in or register per window;
	// waitError carries when to retry.
	ErrRateLimited = errors.New("user: too many attempts")
	// ErrNoLockout: no lockout of that kind and key.
	ErrNoLockout = errors.New("user: no such lockout")
	// ErrStoreUnavailable: the store did not answer (Redis down, file closed).
	ErrStoreUnavailable = errors.New("user: store unavailable")
	// ErrForbidden: the caller may not act on another user's data.
	ErrForbidden = errors.New("user: not allowed for this account")
	// ErrLastAdmin: the change would leave no enabled account holding
	// roles.write (the last admin, generalised).
	ErrLastAdmin = errors.New("user: the change would leave no enabled account that may manage roles (roles.write)")
	// ErrBadRoles: roles must be a non-empty set of known roles.
	ErrBadRoles = errors.New("user: roles must be one or more existing roles")
	// ErrBadRoleName: see validRoleName.
	ErrBadRoleName = errors.New("user: a role name is 2-32 characters of a-z, 0-9, '_', '.', '-', starting with a letter")
	// ErrBadPermissions: a permission not in the catalogue.
	ErrBadPermissions = errors.New("user: permissions must be names from the catalogue (GET /api/v1/admin/permissions)")
	// ErrNoRole: no role has the name.
	ErrNoRole = errors.New("user: no such role")
	// ErrRoleExists: a role has the name already.
	ErrRoleExists = errors.New("user: a role with that name exists")
	// ErrBuiltinRole: admin always holds every permission; admin and user
	// cannot be deleted.
	ErrBuiltinRole = errors.New("user: the built-in role admin cannot be changed, and admin and user cannot be deleted")
	// ErrRoleInUse: accounts hold the role; take it from them first.
	ErrRoleInUse = errors.New("user: accounts hold this role; take it from them first")
	// ErrBadToken: an API key's name or expiry is not acceptable.
	ErrBadToken = errors.New("user: an API key needs a name of 1-64 characters and an expiry in the future, at most a year ahead")
	// ErrTokenPermissions: a key asked for more than its owner holds.
	ErrTokenPermissions = errors.New("user: an API key can hold only permissions its owner holds")
	// ErrNoToken: no API key has the id (or it is not the caller's).
	ErrNoToken = errors.New("user: no such API key")
	// ErrSessionOnly: an API key cannot do this (make keys, change the
	// password, renew, log out): it needs a signed-in session.
	ErrSessionOnly = errors.New("user: this needs a signed-in session, not an API key")
	// ErrNoSession: no live session has the id (or it is not the caller's).
	ErrNoSession = errors.New("user: no such session")
	// ErrEmailTaken: another account has the address.
	ErrEmailTaken = errors.New("user: another account has this email address")
	// ErrBadEmail: not one plain address.
	ErrBadEmail = errors.New("user: not a valid email address")
	// ErrEmailRequired: accounts.requireEmail is on and none was given.
	ErrEmailRequired = errors.New("user: an email address is required")
	// ErrEmailUnverified: accounts.requireVerifiedEmail is on and the
	// account's address is not verified yet.
	ErrEmailUnverified = errors.New("user: confirm your email address first: follow the link mailed to you")
	// ErrNoEmail: the account has no address to mail.
	ErrNoEmail = errors.New("user: the account has no email address")
	// ErrEmailVerified: the address is verified already.
	ErrEmailVerified = errors.New("user: the email address is verified already")
	// ErrBadDisplayName: see validDisplayName.
	ErrBadDisplayName = errors.New("user: a display name is at most 64 characters, without control characters")
	// ErrRegistrationClosed: accounts.selfRegistration is off.
	ErrRegistrationClosed = errors.New("user: registration is closed; ask an administrator for an account")
	// ErrTooSoon: a link was mailed moments ago.
	ErrTooSoon = errors.New("user: a link was sent moments ago; wait a little before asking again")
)

// User is an account.
type User struct {
	ID           string   `json:"id"`
	Username     string   `json:"username"`
	PasswordHash string   `json:"password_hash"`
	Roles        []string `json:"roles"`
	Disabled     bool     `json:"disabled,omitempty"`
	// Email is the account's address ("" when none), EmailVerified whether
	// its owner followed the link mailed to it.
	Email         string `json:"email,omitempty"`
	EmailVerified bool   `json:"email_verified,omitempty"`
	DisplayName   string `json:"display_name,omitempty"`
	// MustChangePassword: the next sign-in must set a new password (a
	// temporary one was given, or an admin asked for a change).
	MustChangePassword bool `json:"must_change_password,omitempty"`
	// Lang is the account's language (en or zh-CN), which its mail is
	// written in; empty: the config's ui.language.
	Lang string `json:"lang,omitempty"`
	// TOTPSecret (base32) is in force when set; TOTPPending waits for its
	// first code; TOTPLastStep is the last time step a code was accepted
	// for (a code is never accepted twice); RecoveryHashes are the SHA-256
	// of the unused recovery codes.
	TOTPSecret     string   `json:"totp_secret,omitempty"`
	TOTPPending    string   `json:"totp_pending,omitempty"`
	TOTPLastStep   int64    `json:"totp_last_step,omitempty"`
	RecoveryHashes []string `json:"recovery_hashes,omitempty"`
	// Passkeys are the account's WebAuthn credentials (passkeys.go).
	Passkeys  []Passkey `json:"passkeys,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Session is one login: it ends at ExpiresAt whatever renewals happen, or
// sooner when deleted.
type Session struct {
	ID        string    `json:"id"`
	UserID    string    `json:"user_id"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// LastSeen is when the session was last used, updated at most once a
	// minute (seenEvery).
	LastSeen   time.Time `json:"last_seen"`
	ClientAddr string    `json:"client_addr,omitempty"`
	UserAgent  string    `json:"user_agent,omitempty"`
	// AMR are how the session signed in (RFC 8176): "pwd", then "otp" or
	// "hwk" for the second factor; "hwk" alone for a passkey.
	AMR []string `json:"amr,omitempty"`
}

var usernameRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]{3,32}$`)

// ValidUsername checks the username rule.
func ValidUsername(name string) error {
	if !usernameRE.MatchString(name) {
		return ErrBadUsername
	}
	return nil
}

// validDisplayName checks a display name: at most 64 characters of valid
// UTF-8, no control characters.
func validDisplayName(s string) error {
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > 64 {
		return ErrBadDisplayName
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return ErrBadDisplayName
		}
	}
	return nil
}

// ValidPassword checks the password rule, counting characters, not bytes.
func ValidPassword(pw string) error {
	if !utf8.ValidString(pw) {
		return ErrBadPassword
	}
	if n := utf8.RuneCountInString(pw); n < 10 || n > 128 {
		return ErrBadPassword
	}
	return nil
}

// hashParams are argon2id's parameters: OWASP's 19 MiB, 2 passes. About 22 ms
// on this project's reference machine. argon2id, not bcrypt, because bcrypt
// ignores (or, in x/crypto, refuses) passwords over 72 bytes and ours may be
// 128 characters.
var hashParams = &argon2id.Params{Memory: 19 * 1024, Iterations: 2, Parallelism: 1, SaltLength: 16, KeyLength: 32}

// hashSlots bounds concurrent hashing, so a flood of logins costs time, not
// memory (each hash holds 19 MiB): one per core the process may use. More
// hash no faster (measured on 2 cores: 71 hashes/s with 2 at once, 62 with
// 4, whose 76 MiB thrash the caches) and hold more memory.
var hashSlots = make(chan struct{}, runtime.GOMAXPROCS(0))

// HashParams returns the argon2id parameters passwords are hashed with, and
// how many hashes may run at once: the login benchmark measures the hash's
// own limit with them.
func HashParams() (params argon2id.Params, slots int) { return *hashParams, cap(hashSlots) }

// ErrBusy: no hashing slot came free before the request's deadline.
var ErrBusy = errors.New("user: too many password checks at once, try again")

// hashSlot waits for a hashing slot, or for the caller to give up.
func hashSlot(ctx context.Context) (release func(), err error) {
	if ctx.Err() != nil {
		return nil, ErrBusy
	}
	select {
	case hashSlots <- struct{}{}:
		return func() {
			<-hashSlots
			idleHashing.Reset(time.Duration(returnHashMemoryAfter.Load()))
		}, nil
	case <-ctx.Done():
		return nil, ErrBusy
	}
}

// returnHashMemoryAfter is how long hashing must have been idle before its
// memory goes back to the operating system (a time.Duration; tests shorten
// it). At 2 s, the first logins after a pause were slow (make bench row 3:
// p99 570 ms and a slowest login over 1 s, against 160-370 ms without it);
// at 30 s they are not (p99 162-174 ms, slowest 322-391 ms).
var returnHashMemoryAfter atomic.Int64

func init() { returnHashMemoryAfter.Store(int64(30 * time.Second)) }

// idleHashing fires once no hash has ended for returnHashMemoryAfter: the
// end of a burst of sign-ins (one, for an idle portal). Each hash allocates
// and drops 19 MiB; the runtime returns freed memory only slowly (one
// sign-in left an idle embedded Portal at 62 MiB resident 30 s later, 42
// before it), so it is returned once the burst is over. During a
// burst the timer keeps being pushed back, so a flood of logins pays for no
// extra collections.
var idleHashing = func() *time.Timer {
	t := time.AfterFunc(time.Hour, returnHashMemory)
	t.Stop()
	return t
}()

// memoryReturns counts returnHashMemory's returns, for tests.
var memoryReturns atomic.Int64

// returnHashMemory returns the heap's free memory to the operating system,
// unless a hash is running (whose end fires idleHashing again).
func returnHashMemory() {
	if len(hashSlots) == 0 {
		debug.FreeOSMemory()
		memoryReturns.Add(1)
	}
}

// hashPassword returns an encoded argon2id hash of pw.
func hashPassword(ctx context.Context, pw string) (string, error) {
	release, err := hashSlot(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	return argon2id.CreateHash(pw, hashParams)
}

// dummyHash is compared against when the user does not exist, so that a login
// for an unknown name costs as much as one for a known name. It is a hash of
// a throwaway password made with hashParams (TestHashParams checks that they
// match): a constant, because making it at start cost every process that
// imports this package, the gateway too, a hash's time and 19 MiB of heap.
const dummyHash = "$argon2id$v=19$m=19456,t=2,p=1$M+m7itvn6EsjRniRyeb+gg$ZegvWtwG7zgYzjpFrfOhziXHKnQAjUaJlF9e7Dt2rv4"

// unknownUserHash is what an unknown user's login is compared against:
// dummyHash, but for tests (CheapHashesForTests).
var unknownUserHash = dummyHash

// checkPassword reports whether pw matches hash; an empty hash is compared
// against unknownUserHash and never matches.
func checkPassword(ctx context.Context, pw, hash string) (bool, error) {
	release, err := hashSlot(ctx)
	if err != nil {
		return false, err
	}
	defer release()
	if hash == "" {
		_, _ = argon2id.ComparePasswordAndHash(pw, unknownUserHash)
		return false, nil
	}
	ok, err := argon2id.ComparePasswordAndHash(pw, hash)
	return err == nil && ok, nil
}
