package user

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/portal-go/portal/internal/endpoint"
	pb "github.com/portal-go/portal/proto/user"
)

// Endpoints are the user service's RPCs: who may call each, whether a
// client may retry it, and the JSON route of those the gateway exposes as
// they are. The routes for the caller's own session (login, logout, /me,
// password, ending a session) are the gateway's own: they set or clear its
// cookie and cache.
var Endpoints = endpoint.Declare("user",
	endpoint.Endpoint{Name: "User.Register", Access: endpoint.Public},
	// Mailed links, for people who cannot sign in (yet): the gateway's own
	// routes (a form or JSON, no session).
	endpoint.Endpoint{Name: "Accounts.VerifyEmail", Access: endpoint.Public},
	endpoint.Endpoint{Name: "Accounts.ForgotPassword", Access: endpoint.Public},
	endpoint.Endpoint{Name: "Accounts.ResetPassword", Access: endpoint.Public},
	// The caller's profile and second factor (PATCH /me and the QR code are
	// the gateway's own: it drops its cached view, or answers a PNG).
	endpoint.Endpoint{Name: "Accounts.UpdateProfile", Access: endpoint.SignedIn},
	endpoint.Endpoint{Name: "Accounts.SendVerification", Access: endpoint.SignedIn,
		Routes: endpoint.Routes(endpoint.NoContent[pb.SendVerificationRequest, pb.SendVerificationResponse]("POST", "/me/email/verification", http.StatusAccepted, nil))},
	endpoint.Endpoint{Name: "Accounts.BeginTOTP", Access: endpoint.SignedIn,
		Routes: endpoint.Routes(endpoint.JSON[pb.BeginTOTPRequest]("POST", "/me/totp", 0, nil, func(r *pb.BeginTOTPResponse) totpKey {
			return totpKey{r.Secret, r.Url}
		}))},
	endpoint.Endpoint{Name: "Accounts.TOTPQRCode", Access: endpoint.SignedIn},
	endpoint.Endpoint{Name: "Accounts.ConfirmTOTP", Access: endpoint.SignedIn,
		Routes: endpoint.Routes(endpoint.JSON("POST", "/me/totp/confirm", 0, func(in endpoint.Input, r *pb.ConfirmTOTPRequest) error { return decodeCode(in, &r.Code) }, func(r *pb.ConfirmTOTPResponse) totpConfirmed {
			return totpConfirmed{endpoint.OrEmpty(r.RecoveryCodes)}
		}))},
	endpoint.Endpoint{Name: "Accounts.DisableTOTP", Access: endpoint.SignedIn,
		Routes: endpoint.Routes(endpoint.NoContent[pb.DisableTOTPRequest, pb.DisableTOTPResponse]("POST", "/me/totp/disable", 0, func(in endpoint.Input, r *pb.DisableTOTPRequest) error {
			var b struct {
				Password    string `json:"password"`
				Code        string `json:"code"`
				DeviceToken string `json:"device_token"`
			}
			if err := in.DecodeJSON(&b); err != nil {
				return err
			}
			r.Password, r.Code, r.DeviceToken = b.Password, b.Code, b.DeviceToken
			return nil
		}))},
	endpoint.Endpoint{Name: "Accounts.NewRecoveryCodes", Access: endpoint.SignedIn,
		Routes: endpoint.Routes(endpoint.JSON("POST", "/me/totp/recovery-codes", 0, func(in endpoint.Input, r *pb.NewRecoveryCodesRequest) error { return decodeCode(in, &r.Code) }, func(r *pb.NewRecoveryCodesResponse) totpConfirmed {
			return totpConfirmed{endpoint.OrEmpty(r.RecoveryCodes)}
		}))},
	// Passkeys: the caller's own, and beginning a sign-in with one
	// (finishing it is the gateway's route: it sets the session cookie).
	endpoint.Endpoint{Name: "Passkeys.BeginRegistration", Access: endpoint.SignedIn,
		Routes: endpoint.Routes(endpoint.JSON[pb.BeginPasskeyRequest]("POST", "/me/passkeys/begin", 0, nil, renderCeremony))},
	endpoint.Endpoint{Name: "Passkeys.FinishRegistration", Access: endpoint.SignedIn,
		Routes: endpoint.Routes(endpoint.JSON("POST", "/me/passkeys/finish", http.StatusCreated, func(in endpoint.Input, r *pb.FinishPasskeyRequest) error {
			var b struct {
				Ceremony   string          `json:"ceremony"`
				Name       string          `json:"name"`
				Credential json.RawMessage `json:"credential"`
			}
			if err := in.DecodeJSON(&b); err != nil {
				return err
			}
			r.Ceremony, r.Name, r.Credential = b.Ceremony, b.Name, b.Credential
			return nil
		}, passkeyJSON))},
	endpoint.Endpoint{Name: "Passkeys.ListPasskeys", Access: endpoint.SignedIn, Retry: true,
		Routes: endpoint.Routes(endpoint.JSON[pb.ListPasskeysRequest]("GET", "/me/passkeys", 0, nil, func(r *pb.ListPasskeysResponse) passkeyList {
			out := make([]passkey, 0, len(r.Passkeys))
			for _, p := range r.Passkeys {
				out = append(out, passkeyJSON(p))
			}
			return passkeyList{out}
		}))},
	endpoint.Endpoint{Name: "Passkeys.RenamePasskey", Access: endpoint.SignedIn,
		Routes: endpoint.Routes(endpoint.JSON("PATCH", "/me/passkeys/:id", 0, func(in endpoint.Input, r *pb.RenamePasskeyRequest) error {
			var b struct {
				Name string `json:"name"`
			}
			if err := in.DecodeJSON(&b); err != nil {
				return err
			}
			r.Id, r.Name = in.Param("id"), b.Name
			return nil
		}, passkeyJSON))},
	endpoint.Endpoint{Name: "Passkeys.DeletePasskey", Access: endpoint.SignedIn,
		Routes: endpoint.Routes(endpoint.NoContent[pb.DeletePasskeyRequest, pb.DeletePasskeyResponse]("DELETE", "/me/passkeys/:id", 0, func(in endpoint.Input, r *pb.DeletePasskeyRequest) error {
			// {"password"} is needed unless the session signed in moments
			// ago; without a body, none is sent.
			var b struct {
				Password string `json:"password"`
			}
			if in.MediaType() != "" {
				if err := in.DecodeJSON(&b); err != nil {
					return err
				}
			}
			r.Id, r.Password = in.Param("id"), b.Password
			return nil
		}))},
	endpoint.Endpoint{Name: "Passkeys.BeginLogin", Access: endpoint.Public,
		Routes: endpoint.Routes(endpoint.JSON[pb.BeginPasskeyRequest]("POST", "/login/passkey/begin", 0, nil, renderCeremony))},
	endpoint.Endpoint{Name: "Passkeys.FinishLogin", Access: endpoint.Public},
	// Accounts an admin manages.
	endpoint.Endpoint{Name: "Accounts.CreateUser", Access: endpoint.UsersWrite,
		Routes: endpoint.Routes(endpoint.JSON("POST", "/admin/users", http.StatusCreated, bindNewUser, func(r *pb.CreateUserResponse) newUser {
			return newUser{r.Id, r.Username, r.Invited}
		}))},
	endpoint.Endpoint{Name: "Accounts.ResetUserPassword", Access: endpoint.UsersWrite,
		Routes: endpoint.Routes(endpoint.JSON("POST", "/admin/users/:id/password", 0, func(in endpoint.Input, r *pb.ResetUserPasswordRequest) error {
			var b struct {
				Temporary bool `json:"temporary"`
			}
			if err := in.DecodeJSON(&b); err != nil {
				return err
			}
			r.UserId, r.Temporary = in.Param("id"), b.Temporary
			return nil
		}, func(r *pb.ResetUserPasswordResponse) passwordReset {
			return passwordReset{r.Mailed, r.SessionsEnded, r.TemporaryPassword}
		}))},
	endpoint.Endpoint{Name: "Accounts.RequirePasswordChange", Access: endpoint.UsersWrite,
		Routes: endpoint.Routes(endpoint.JSON("POST", "/admin/users/:id/require-password-change", 0, func(in endpoint.Input, r *pb.RequirePasswordChangeRequest) error {
			r.UserId = in.Param("id")
			return nil
		}, func(r *pb.RequirePasswordChangeResponse) sessionsEnded {
			return sessionsEnded{r.SessionsEnded}
		}))},
	endpoint.Endpoint{Name: "Accounts.ResetFactors", Access: endpoint.UsersWrite,
		Routes: endpoint.Routes(endpoint.NoContent[pb.ResetFactorsRequest, pb.ResetFactorsResponse]("POST", "/admin/users/:id/factors/reset", 0, func(in endpoint.Input, r *pb.ResetFactorsRequest) error {
			r.UserId = in.Param("id")
			return nil
		}))},
	endpoint.Endpoint{Name: "Accounts.ListFailedMail", Access: endpoint.UsersRead, Retry: true,
		Routes: endpoint.Routes(endpoint.JSON[pb.ListFailedMailRequest]("GET", "/admin/mail/failed", 0, nil, func(r *pb.ListFailedMailResponse) failedMail {
			return failedMail{endpoint.Present(endpoint.OrEmpty(r.Messages))}
		}))},
	endpoint.Endpoint{Name: "User.Login", Access: endpoint.Public},
	endpoint.Endpoint{Name: "User.Health", Access: endpoint.Public, Retry: true},
	endpoint.Endpoint{Name: "User.Logout", Access: endpoint.SignedIn, Retry: true},
	endpoint.Endpoint{Name: "User.Info", Access: endpoint.SignedIn, Retry: true},
	endpoint.Endpoint{Name: "User.ChangePassword", Access: endpoint.SignedIn},
	endpoint.Endpoint{Name: "User.Renew", Access: endpoint.SignedIn, Retry: true},
	endpoint.Endpoint{Name: "User.ListSessions", Access: endpoint.SignedIn, Retry: true},
	endpoint.Endpoint{Name: "User.RevokeSession", Access: endpoint.SignedIn},

	endpoint.Endpoint{Name: "User.ListUsers", Access: endpoint.UsersRead, Retry: true,
		Routes: endpoint.Routes(endpoint.JSON("GET", "/admin/users", 0, bindListUsers, func(r *pb.ListUsersResponse) userList {
			return userList{endpoint.Present(endpoint.OrEmpty(r.Users)), r.Total, r.Next, r.Partial}
		}).WithQuery(UsersQuery...))},
	endpoint.Endpoint{Name: "User.GetUser", Access: endpoint.UsersRead, Retry: true,
		Routes: endpoint.Routes(endpoint.JSON("GET", "/admin/users/:id", 0, func(in endpoint.Input, r *pb.GetUserRequest) error {
			r.Id = in.Param("id")
			return nil
		}, func(r *pb.GetUserResponse) userDetail {
			return userDetail{endpoint.Present(r.User), endpoint.Present(r.Sessions)}
		}))},
	endpoint.Endpoint{Name: "User.UpdateUser", Access: endpoint.UsersWrite,
		Routes: endpoint.Routes(endpoint.JSON("PATCH", "/admin/users/:id", 0, bindUserPatch, func(r *pb.UpdateUserResponse) userUpdated {
			return userUpdated{endpoint.Present(r.User), r.SessionsEnded}
		}))},
	endpoint.Endpoint{Name: "User.DeleteUser", Access: endpoint.UsersWrite,
		Routes: endpoint.Routes(endpoint.NoContent[pb.DeleteUserRequest, pb.DeleteUserResponse]("DELETE", "/admin/users/:id", 0, func(in endpoint.Input, r *pb.DeleteUserRequest) error {
			r.Id = in.Param("id")
			return nil
		}))},
	endpoint.Endpoint{Name: "User.Stats", Access: endpoint.OverviewRead, Retry: true},
	endpoint.Endpoint{Name: "User.ListLockouts", Access: endpoint.UsersRead, Retry: true,
		Routes: endpoint.Routes(endpoint.JSON[pb.ListLockoutsRequest]("GET", "/admin/lockouts", 0, nil, func(r *pb.ListLockoutsResponse) lockouts {
			return lockouts{endpoint.Present(r.Lockouts)}
		}))},
	endpoint.Endpoint{Name: "User.LiftLockout", Access: endpoint.UsersWrite,
		// An IPv6 /64 key has a slash: the key is the rest of the path.
		Routes: endpoint.Routes(endpoint.NoContent[pb.LiftLockoutRequest, pb.LiftLockoutResponse]("DELETE", "/admin/lockouts/:kind/*key", 0, func(in endpoint.Input, r *pb.LiftLockoutRequest) error {
			r.Kind, r.Key = in.Param("kind"), strings.TrimPrefix(in.Param("key"), "/")
			return nil
		}))},

	endpoint.Endpoint{Name: "User.ListPermissions", Access: endpoint.RolesRead, Retry: true,
		Routes: endpoint.Routes(endpoint.JSON[pb.ListPermissionsRequest]("GET", "/admin/permissions", 0, nil, func(r *pb.ListPermissionsResponse) permissions {
			return permissions{endpoint.Present(r.Permissions)}
		}))},
	endpoint.Endpoint{Name: "User.ListRoles", Access: endpoint.RolesRead, Retry: true,
		Routes: endpoint.Routes(endpoint.JSON[pb.ListRolesRequest]("GET", "/admin/roles", 0, nil, func(r *pb.ListRolesResponse) roleList {
			return roleList{rolesJSON(r.Roles)}
		}))},
	endpoint.Endpoint{Name: "User.GetRole", Access: endpoint.RolesRead, Retry: true,
		Routes: endpoint.Routes(endpoint.JSON("GET", "/admin/roles/:name", 0, func(in endpoint.Input, r *pb.GetRoleRequest) error {
			r.Name = in.Param("name")
			return nil
		}, renderRole))},
	endpoint.Endpoint{Name: "User.CreateRole", Access: endpoint.RolesWrite,
		Routes: endpoint.Routes(endpoint.JSON("POST", "/admin/roles", http.StatusCreated, func(in endpoint.Input, r *pb.Role) error {
			return bindRole(in, r, "")
		}, renderRole))},
	endpoint.Endpoint{Name: "User.UpdateRole", Access: endpoint.RolesWrite,
		Routes: endpoint.Routes(endpoint.JSON("PUT", "/admin/roles/:name", 0, func(in endpoint.Input, r *pb.Role) error {
			return bindRole(in, r, in.Param("name"))
		}, renderRole))},
	endpoint.Endpoint{Name: "User.DeleteRole", Access: endpoint.RolesWrite,
		Routes: endpoint.Routes(endpoint.NoContent[pb.DeleteRoleRequest, pb.DeleteRoleResponse]("DELETE", "/admin/roles/:name", 0, func(in endpoint.Input, r *pb.DeleteRoleRequest) error {
			r.Name = in.Param("name")
			return nil
		}))},

	endpoint.Endpoint{Name: "User.CreateToken", Access: endpoint.SignedIn,
		Routes: endpoint.Routes(endpoint.JSON("POST", "/me/tokens", http.StatusCreated, bindToken, func(r *pb.CreateTokenResponse) newToken {
			return newToken{tokenJSON(r.Token), r.Secret}
		}))},
	// Another user's keys: the service checks users.read (to list) and
	// sessions.revoke (to revoke) when they are not the caller's.
	endpoint.Endpoint{Name: "User.ListTokens", Access: endpoint.SignedIn, Retry: true,
		Routes: endpoint.Routes(
			endpoint.JSON[pb.ListTokensRequest]("GET", "/me/tokens", 0, nil, renderTokens),
			endpoint.JSON("GET", "/admin/users/:id/tokens", 0, func(in endpoint.Input, r *pb.ListTokensRequest) error {
				r.UserId = in.Param("id")
				return nil
			}, renderTokens))},
	endpoint.Endpoint{Name: "User.RevokeToken", Access: endpoint.SignedIn,
		Routes: endpoint.Routes(
			endpoint.NoContent[pb.RevokeTokenRequest, pb.RevokeTokenResponse]("DELETE", "/me/tokens/:id", 0, bindTokenID),
			endpoint.NoContent[pb.RevokeTokenRequest, pb.RevokeTokenResponse]("DELETE", "/admin/tokens/:id", 0, bindTokenID))},

	// The OpenID provider (internal/sso), served by this service.
	endpoint.Endpoint{Name: "OIDC.Serve", Access: endpoint.Public},
	endpoint.Endpoint{Name: "OIDC.ConsentInfo", Access: endpoint.SignedIn, Retry: true},
	endpoint.Endpoint{Name: "OIDC.Consent", Access: endpoint.SignedIn},
	endpoint.Endpoint{Name: "OIDC.ListConsents", Access: endpoint.SignedIn, Retry: true},
	endpoint.Endpoint{Name: "OIDC.RevokeConsent", Access: endpoint.SignedIn},
	endpoint.Endpoint{Name: "OIDC.ListClients", Access: endpoint.ClientsRead, Retry: true},
	endpoint.Endpoint{Name: "OIDC.CreateClient", Access: endpoint.ClientsWrite},
	endpoint.Endpoint{Name: "OIDC.UpdateClient", Access: endpoint.ClientsWrite},
	endpoint.Endpoint{Name: "OIDC.DeleteClient", Access: endpoint.ClientsWrite},
)

// userPatch is the body of PATCH /admin/users/{id}: absent fields stay.
type userPatch struct {
	Roles    *[]string `json:"roles"`
	Disabled *bool     `json:"disabled"`
}

func bindUserPatch(in endpoint.Input, r *pb.UpdateUserRequest) error {
	var p userPatch
	if err := in.DecodeJSON(&p); err != nil {
		return err
	}
	if p.Roles == nil && p.Disabled == nil {
		return endpoint.BadInput("nothing to change: send roles and/or disabled")
	}
	r.Id, r.Disabled = in.Param("id"), p.Disabled
	if p.Roles != nil {
		r.Roles = &pb.Roles{Roles: *p.Roles}
	}
	return nil
}

// roleBody is the body of POST /admin/roles and PUT /admin/roles/{name}.
type roleBody struct {
	Name        string                `json:"name"`
	Permissions []endpoint.Permission `json:"permissions"`
}

// bindRole reads a role; name, when set (PUT), is the path's, and a body
// naming another is refused.
func bindRole(in endpoint.Input, r *pb.Role, name string) error {
	var b roleBody
	if err := in.DecodeJSON(&b); err != nil {
		return err
	}
	if name != "" {
		if b.Name != "" && b.Name != name {
			return endpoint.BadInput("the body names another role than the path")
		}
		b.Name = name
	}
	if b.Permissions == nil {
		return endpoint.BadInput("send permissions (a list, possibly empty)")
	}
	r.Name, r.Permissions = b.Name, names(b.Permissions)
	return nil
}

// role is a role as the API shows it.
type role struct {
	Name        string   `json:"name"`
	Permissions []string `json:"permissions"`
	Builtin     bool     `json:"builtin"`
}

func roleJSON(r *pb.Role) role {
	return role{r.Name, endpoint.OrEmpty(r.Permissions), r.Builtin}
}

func rolesJSON(roles []*pb.Role) []role {
	out := make([]role, 0, len(roles))
	for _, r := range roles {
		out = append(out, roleJSON(r))
	}
	return out
}

func renderRole(r *pb.RoleResponse) role { return roleJSON(r.Role) }

// tokenBody is the body of POST /me/tokens.
type tokenBody struct {
	Name        string                `json:"name"`
	Permissions []endpoint.Permission `json:"permissions"`
	ExpiresAt   int64                 `json:"expires_at"`
}

func bindToken(in endpoint.Input, r *pb.CreateTokenRequest) error {
	var b tokenBody
	if err := in.DecodeJSON(&b); err != nil {
		return err
	}
	r.Name, r.Permissions, r.ExpiresAt = b.Name, names(b.Permissions), b.ExpiresAt
	return nil
}

// names are permissions as the RPCs carry them (nil stays nil).
func names(ps []endpoint.Permission) []string {
	if ps == nil {
		return nil
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = string(p)
	}
	return out
}

func bindTokenID(in endpoint.Input, r *pb.RevokeTokenRequest) error {
	r.Id = in.Param("id")
	return nil
}

// token is an API key as the API shows it (never its secret).
type token struct {
	ID          string   `json:"id"`
	UserID      string   `json:"user_id"`
	Name        string   `json:"name"`
	Permissions []string `json:"permissions"`
	CreatedAt   int64    `json:"created_at"`
	ExpiresAt   int64    `json:"expires_at"`
	LastUsed    int64    `json:"last_used"`
}

func tokenJSON(t *pb.Token) token {
	return token{t.Id, t.UserId, t.Name, endpoint.OrEmpty(t.Permissions), t.CreatedAt, t.ExpiresAt, t.LastUsed}
}

// newToken is a new API key: its secret, shown once.
type newToken struct {
	token
	Token string `json:"token"`
}

// tokenList is GET /me/tokens's answer.
type tokenList struct {
	Tokens []token `json:"tokens"`
}

func renderTokens(r *pb.ListTokensResponse) tokenList {
	out := make([]token, 0, len(r.Tokens))
	for _, t := range r.Tokens {
		out = append(out, tokenJSON(t))
	}
	return tokenList{out}
}

// newUserBody is the body of POST /admin/users: without password, an
// invitation goes to email; without roles, the role user.
type newUserBody struct {
	Username string   `json:"username"`
	Email    string   `json:"email"`
	Roles    []string `json:"roles"`
	Password string   `json:"password"`
}

func bindNewUser(in endpoint.Input, r *pb.CreateUserRequest) error {
	var b newUserBody
	if err := in.DecodeJSON(&b); err != nil {
		return err
	}
	if b.Roles == nil {
		b.Roles = []string{"user"}
	}
	r.Username, r.Email, r.Roles, r.Password = b.Username, b.Email, b.Roles, b.Password
	return nil
}

// decodeCode reads a body {"code"} into code.
func decodeCode(in endpoint.Input, code *string) error {
	var b struct {
		Code string `json:"code"`
	}
	err := in.DecodeJSON(&b)
	*code = b.Code
	return err
}

// The answers of the routes above.
type (
	totpKey struct {
		Secret string `json:"secret"`
		URL    string `json:"url"`
	}
	totpConfirmed struct {
		RecoveryCodes []string `json:"recovery_codes"`
	}
	newUser struct {
		ID       string `json:"id"`
		Username string `json:"username"`
		Invited  bool   `json:"invited"`
	}
	passwordReset struct {
		Mailed        bool  `json:"mailed"`
		SessionsEnded int32 `json:"sessions_ended"`
		// TemporaryPassword is there when one was asked for.
		TemporaryPassword string `json:"temporary_password,omitempty"`
	}
	sessionsEnded struct {
		SessionsEnded int32 `json:"sessions_ended"`
	}
	failedMail struct {
		Messages endpoint.Presented[[]*pb.FailedMail] `json:"messages"`
	}
	userList struct {
		Users endpoint.Presented[[]*pb.Account] `json:"users"`
		Total int32                             `json:"total"`
		// Next is the cursor of the next page ("": none).
		Next string `json:"next"`
		// Partial says the filters needed the accounts' records and the
		// bounded scan stopped: total counts the matches among those read.
		Partial bool `json:"partial"`
	}
	userDetail struct {
		User     endpoint.Presented[*pb.Account]   `json:"user"`
		Sessions endpoint.Presented[[]*pb.Session] `json:"sessions"`
	}
	userUpdated struct {
		User          endpoint.Presented[*pb.Account] `json:"user"`
		SessionsEnded int32                           `json:"sessions_ended"`
	}
	lockouts struct {
		Lockouts endpoint.Presented[[]*pb.LockoutEntry] `json:"lockouts"`
	}
	permissions struct {
		Permissions endpoint.Presented[[]*pb.Permission] `json:"permissions"`
	}
	roleList struct {
		Roles []role `json:"roles"`
	}
)

// UsersQuery are the query parameters of GET /api/v1/admin/users (the
// gateway's users page and CSV export read the same).
var UsersQuery = []endpoint.Param{
	{Name: "q", Description: "a part of the name (no case)"},
	{Name: "role", Description: "holding this role"},
	{Name: "status", Description: "active (enabled, not locked), disabled, locked or unverified (email not confirmed)", Enum: UserStatuses},
	{Name: "sort", Description: "the order: name (default), created or last_login", Enum: UserSorts},
	{Name: "order", Description: "asc (default) or desc", Enum: []string{"asc", "desc"}},
	{Name: "created_from", Description: "created at or after (unix seconds)", Integer: true},
	{Name: "created_to", Description: "created before (unix seconds)", Integer: true},
	{Name: "login_from", Description: "last signed in at or after (unix seconds)", Integer: true},
	{Name: "login_to", Description: "last signed in before (unix seconds; never signed in counts as 0)", Integer: true},
	{Name: "offset", Description: "skip this many matches", Integer: true},
	{Name: "limit", Description: "1 to 200 (default 50)", Integer: true},
	{Name: "cursor", Description: "the next of the previous answer (replaces offset)"},
}

// bindListUsers reads UsersQuery (checked already) into a request.
func bindListUsers(in endpoint.Input, r *pb.ListUsersRequest) error {
	r.Query, r.Role, r.Status, r.Sort, r.Cursor = in.Query("q"), in.Query("role"), in.Query("status"), in.Query("sort"), in.Query("cursor")
	r.Desc = in.Query("order") == "desc"
	r.CreatedFrom, r.CreatedTo = endpoint.QueryInt64(in, "created_from"), endpoint.QueryInt64(in, "created_to")
	r.LoginFrom, r.LoginTo = endpoint.QueryInt64(in, "login_from"), endpoint.QueryInt64(in, "login_to")
	return endpoint.QueryInts(in, map[string]*int32{"offset": &r.Offset, "limit": &r.Limit})
}

// renderCeremony is a begun passkey ceremony as JSON: its id, and the
// options for navigator.credentials (create or get) as publicKey.
func renderCeremony(r *pb.BeginPasskeyResponse) begunCeremony {
	return begunCeremony{r.Ceremony, json.RawMessage(r.Options)}
}

func passkeyJSON(p *pb.Passkey) passkey {
	return passkey{p.Id, p.Name, p.CreatedAt, p.LastUsed}
}

// The passkey routes' answers.
type (
	begunCeremony struct {
		Ceremony string `json:"ceremony"`
		// PublicKey is the options of navigator.credentials.create or get.
		PublicKey json.RawMessage `json:"publicKey"`
	}
	passkey struct {
		ID        string `json:"id"`
		Name      string `json:"name"`
		CreatedAt int64  `json:"created_at"`
		// LastUsed is 0 for a passkey never used to sign in.
		LastUsed int64 `json:"last_used"`
	}
	passkeyList struct {
		Passkeys []passkey `json:"passkeys"`
	}
)
