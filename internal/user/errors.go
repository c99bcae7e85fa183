package user

import (
	"errors"
	"net/http"
	"strings"

	merrors "go-micro.dev/v4/errors"

	pb "github.com/portal-go/portal/proto/user"
)

// errorTable maps sentinels to RPC error ids and codes, first match wins.
var errorTable = []struct {
	err  error
	id   string
	code int32
}{
	{ErrNotFound, "user.not_found", 404},
	{ErrExists, "user.exists", 409},
	{ErrBadUsername, "user.bad_username", 400},
	{ErrBadPassword, "user.bad_password", 400},
	{ErrBadCredentials, "user.bad_credentials", 401},
	{ErrWrongPassword, "user.wrong_password", 403},
	{ErrDisabled, "user.disabled", 403},
	{ErrSessionEnded, "user.session_ended", 401},
	{ErrLocked, "user.locked", http.StatusTooManyRequests},
	{ErrRateLimited, "user.rate_limited", http.StatusTooManyRequests},
	{ErrNoLockout, "user.lockout_not_found", 404},
	{ErrForbidden, "user.forbidden", 403},
	{ErrLastAdmin, "user.last_admin", 409},
	{ErrBadRoles, "user.bad_roles", 400},
	{ErrBadQuery, "user.bad_query", 400},
	{ErrNoSession, "user.session_not_found", 404},
	{ErrBadRoleName, "user.bad_role_name", 400},
	{ErrBadPermissions, "user.bad_permissions", 400},
	{ErrNoRole, "user.role_not_found", 404},
	{ErrRoleExists, "user.role_exists", 409},
	{ErrBuiltinRole, "user.builtin_role", 409},
	{ErrRoleInUse, "user.role_in_use", 409},
	{ErrBadToken, "user.bad_token", 400},
	{ErrTokenPermissions, "user.token_permissions", 403},
	{ErrNoToken, "user.token_not_found", 404},
	{ErrSessionOnly, "user.session_only", 403},
	{ErrEmailTaken, "user.email_taken", 409},
	{ErrBadEmail, "user.bad_email", 400},
	{ErrEmailRequired, "user.email_required", 400},
	{ErrEmailUnverified, "user.email_unverified", 403},
	{ErrNoEmail, "user.no_email", 409},
	{ErrEmailVerified, "user.email_verified", 409},
	{ErrBadDisplayName, "user.bad_display_name", 400},
	{ErrRegistrationClosed, "user.registration_closed", 403},
	{ErrTooSoon, "user.too_soon", http.StatusTooManyRequests},
	{ErrBadLink, "user.bad_link", 400},
	{ErrPasswordChangeRequired, "user.password_change_required", 403},
	{ErrSamePassword, "user.same_password", 400},
	{ErrMFARequired, "user.mfa_required", 401},
	{ErrBadCode, "user.bad_code", 401},
	{ErrNoEnrolment, "user.no_enrolment", 409},
	{ErrTOTPOff, "user.totp_off", 409},
	{ErrBadLanguage, "user.bad_language", 400},
	{ErrTwoFactorNeeded, "user.two_factor_needed", 409},
	{ErrPasskeyCeremony, "user.passkey_expired", 400},
	{ErrPasskeyInvalid, "user.passkey_invalid", 401},
	{ErrBadPasskeyName, "user.bad_passkey_name", 400},
	{ErrNoPasskey, "user.passkey_not_found", 404},
	{ErrTooManyPasskeys, "user.too_many_passkeys", 409},
	{ErrReauthRequired, "user.reauth_required", 403},
}

// rpcError maps an error to the go-micro error that crosses RPC: sentinels to
// their id and code; ErrBusy to 503; anything else to a 500 whose detail
// reaches the calling service (which logs it), never an end user.
func rpcError(err error) error {
	if errors.Is(err, ErrBusy) || errors.Is(err, ErrStoreUnavailable) {
		return rpcUnavailable(err)
	}
	for _, m := range errorTable {
		if errors.Is(err, m.err) {
			detail := strings.TrimPrefix(m.err.Error(), "user: ")
			if le := (*waitError)(nil); errors.As(err, &le) {
				return pb.LockoutError(m.id, &pb.Lockout{Message: detail, RetryAfterSeconds: int32(le.seconds())})
			}
			return &merrors.Error{Id: m.id, Code: m.code, Detail: detail, Status: http.StatusText(int(m.code))}
		}
	}
	return merrors.InternalServerError("user.internal", "%v", err)
}

// rpcUnavailable reports that a dependency (the store) does not answer.
func rpcUnavailable(err error) error {
	return merrors.New("user.unavailable", err.Error(), http.StatusServiceUnavailable)
}
