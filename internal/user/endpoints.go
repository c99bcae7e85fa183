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
		Routes: endpoint.Routes(endpoint.JSON[pb.SendVerificationRequest, pb.SendVerificationResponse]("POST", "/me/email/verification", http.StatusAccepted, nil, nil))},
	endpoint.Endpoint{Name: "Accounts.BeginTOTP", Access: endpoint.SignedIn,
		Routes: endpoint.Routes(endpoint.JSON[pb.BeginTOTPRequest]("POST", "/me/totp", 0, nil, func(r *pb.BeginTOTPResponse) any {
			return map[string]any{"secret": r.Secret, "url": r.Url}
		}))},
	endpoint.Endpoint{Name: "Accounts.TOTPQRCode", Access: endpoint.SignedIn},
	endpoint.Endpoint{Name: "Accounts.ConfirmTOTP", Access: endpoint.SignedIn,
		Routes: endpoint.Routes(endpoint.JSON("POST", "/me/totp/confirm", 0, func(in endpoint.Input, r *pb.ConfirmTOTPRequest) error {
			var b struct {
				Code string `json:"code"`
			}
			if err := in.DecodeJSON(&b); err != nil {
				return err
			}
			r.Code = b.Code
			return nil
		}, func(r *pb.ConfirmTOTPResponse) any {
			return map[string]any{"recovery_codes": endpoint.OrEmpty(r.RecoveryCodes)}
		}))},
	// Passkeys: the caller's own (signing in with one is the gateway's
	// route: it sets the session cookie).
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
		Routes: endpoint.Routes(endpoint.JSON[pb.ListPasskeysRequest]("GET", "/me/passkeys", 0, nil, func(r *pb.ListPasskeysResponse) any {
			out := make([]any, 0, len(r.Passkeys))
			for _, p := range r.Passkeys {
				out = append(out, passkeyJSON(p))
			}
			return map[string]any{"passkeys": out}
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
		Routes: endpoint.Routes(endpoint.JSON[pb.DeletePasskeyRequest, pb.DeletePasskeyResponse]("DELETE", "/me/passkeys/:id", 0, func(in endpoint.Input, r *pb.DeletePasskeyRequest) error {
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
		}, nil))},
	endpoint.Endpoint{Name: "Passkeys.BeginLogin", Access: endpoint.Public},
	endpoint.Endpoint{Name: "Passkeys.FinishLogin", Access: endpoint.Public},
	// Accounts an admin manages.
	endpoint.Endpoint{Name: "Accounts.CreateUser", Access: endpoint.UsersWrite,
		Routes: endpoint.Routes(endpoint.JSON("POST", "/admin/users", http.StatusCreated, bindNewUser, func(r *pb.CreateUserResponse) any {
			return map[string]any{"id": r.Id, "username": r.Username, "invited": r.Invited}
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
		}, func(r *pb.ResetUserPasswordResponse) any {
			out := map[string]any{"mailed": r.Mailed, "sessions_ended": r.SessionsEnded}
			if r.TemporaryPassword != "" {
				out["temporary_password"] = r.TemporaryPassword
			}
			return out
		}))},
	endpoint.Endpoint{Name: "Accounts.RequirePasswordChange", Access: endpoint.UsersWrite,
		Routes: endpoint.Routes(endpoint.JSON("POST", "/admin/users/:id/require-password-change", 0, func(in endpoint.Input, r *pb.RequirePasswordChangeRequest) error {
			r.UserId = in.Param("id")
			return nil
		}, func(r *pb.RequirePasswordChangeResponse) any {
			return map[string]any{"sessions_ended": r.SessionsEnded}
		}))},
	endpoint.Endpoint{Name: "Accounts.ResetFactors", Access: endpoint.UsersWrite,
		Routes: endpoint.Routes(endpoint.JSON[pb.ResetFactorsRequest, pb.ResetFactorsResponse]("POST", "/admin/users/:id/factors/reset", 0, func(in endpoint.Input, r *pb.ResetFactorsRequest) error {
			r.UserId = in.Param("id")
			return nil
		}, nil))},
	endpoint.Endpoint{Name: "Accounts.ListFailedMail", Access: endpoint.UsersRead, Retry: true,
		Routes: endpoint.Routes(endpoint.JSON[pb.ListFailedMailRequest]("GET", "/admin/mail/failed", 0, nil, func(r *pb.ListFailedMailResponse) any {
			out := make([]map[string]any, 0, len(r.Messages))
			for _, m := range r.Messages {
				out = append(out, map[string]any{"id": m.Id, "to": m.To, "subject": m.Subject, "kind": m.Kind, "attempts": m.Attempts, "last_error": m.LastError, "queued_at": m.QueuedAt})
			}
			return map[string]any{"messages": out}
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
		Routes: endpoint.Routes(endpoint.JSON("GET", "/admin/users", 0, func(in endpoint.Input, r *pb.ListUsersRequest) error {
			r.Query = in.Query("q")
			return endpoint.QueryInts(in, map[string]*int32{"offset": &r.Offset, "limit": &r.Limit})
		}, func(r *pb.ListUsersResponse) any {
			return map[string]any{"users": endpoint.Present(endpoint.OrEmpty(r.Users)), "total": r.Total}
		}))},
	endpoint.Endpoint{Name: "User.GetUser", Access: endpoint.UsersRead, Retry: true,
		Routes: endpoint.Routes(endpoint.JSON("GET", "/admin/users/:id", 0, func(in endpoint.Input, r *pb.GetUserRequest) error {
			r.Id = in.Param("id")
			return nil
		}, func(r *pb.GetUserResponse) any {
			return map[string]any{"user": endpoint.Present(r.User), "sessions": endpoint.Present(endpoint.OrEmpty(r.Sessions))}
		}))},
	endpoint.Endpoint{Name: "User.UpdateUser", Access: endpoint.UsersWrite,
		Routes: endpoint.Routes(endpoint.JSON("PATCH", "/admin/users/:id", 0, bindUserPatch, func(r *pb.UpdateUserResponse) any {
			return map[string]any{"user": endpoint.Present(r.User), "sessions_ended": r.SessionsEnded}
		}))},
	endpoint.Endpoint{Name: "User.DeleteUser", Access: endpoint.UsersWrite,
		Routes: endpoint.Routes(endpoint.JSON[pb.DeleteUserRequest, pb.DeleteUserResponse]("DELETE", "/admin/users/:id", 0, func(in endpoint.Input, r *pb.DeleteUserRequest) error {
			r.Id = in.Param("id")
			return nil
		}, nil))},
	endpoint.Endpoint{Name: "User.Stats", Access: endpoint.OverviewRead, Retry: true},
	endpoint.Endpoint{Name: "User.ListLockouts", Access: endpoint.UsersRead, Retry: true,
		Routes: endpoint.Routes(endpoint.JSON[pb.ListLockoutsRequest]("GET", "/admin/lockouts", 0, nil, func(r *pb.ListLockoutsResponse) any {
			return map[string]any{"lockouts": endpoint.OrEmpty(r.Lockouts)}
		}))},
	endpoint.Endpoint{Name: "User.LiftLockout", Access: endpoint.UsersWrite,
		// An IPv6 /64 key has a slash: the key is the rest of the path.
		Routes: endpoint.Routes(endpoint.JSON[pb.LiftLockoutRequest, pb.LiftLockoutResponse]("DELETE", "/admin/lockouts/:kind/*key", 0, func(in endpoint.Input, r *pb.LiftLockoutRequest) error {
			r.Kind, r.Key = in.Param("kind"), strings.TrimPrefix(in.Param("key"), "/")
			return nil
		}, nil))},

	endpoint.Endpoint{Name: "User.ListPermissions", Access: endpoint.RolesRead, Retry: true,
		Routes: endpoint.Routes(endpoint.JSON[pb.ListPermissionsRequest]("GET", "/admin/permissions", 0, nil, func(r *pb.ListPermissionsResponse) any {
			return map[string]any{"permissions": endpoint.OrEmpty(r.Permissions)}
		}))},
	endpoint.Endpoint{Name: "User.ListRoles", Access: endpoint.RolesRead, Retry: true,
		Routes: endpoint.Routes(endpoint.JSON[pb.ListRolesRequest]("GET", "/admin/roles", 0, nil, func(r *pb.ListRolesResponse) any {
			return map[string]any{"roles": endpoint.OrEmpty(rolesJSON(r.Roles))}
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
		Routes: endpoint.Routes(endpoint.JSON[pb.DeleteRoleRequest, pb.DeleteRoleResponse]("DELETE", "/admin/roles/:name", 0, func(in endpoint.Input, r *pb.DeleteRoleRequest) error {
			r.Name = in.Param("name")
			return nil
		}, nil))},

	endpoint.Endpoint{Name: "User.CreateToken", Access: endpoint.SignedIn,
		Routes: endpoint.Routes(endpoint.JSON("POST", "/me/tokens", http.StatusCreated, bindToken, func(r *pb.CreateTokenResponse) any {
			out := tokenJSON(r.Token)
			out["token"] = r.Secret
			return out
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
			endpoint.JSON[pb.RevokeTokenRequest, pb.RevokeTokenResponse]("DELETE", "/me/tokens/:id", 0, bindTokenID, nil),
			endpoint.JSON[pb.RevokeTokenRequest, pb.RevokeTokenResponse]("DELETE", "/admin/tokens/:id", 0, bindTokenID, nil))},

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
	Name        string   `json:"name"`
	Permissions []string `json:"permissions"`
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
	r.Name, r.Permissions = b.Name, b.Permissions
	return nil
}

func roleJSON(r *pb.Role) map[string]any {
	return map[string]any{"name": r.Name, "permissions": endpoint.OrEmpty(r.Permissions), "builtin": r.Builtin}
}

func rolesJSON(roles []*pb.Role) []map[string]any {
	out := make([]map[string]any, 0, len(roles))
	for _, r := range roles {
		out = append(out, roleJSON(r))
	}
	return out
}

func renderRole(r *pb.RoleResponse) any { return roleJSON(r.Role) }

// tokenBody is the body of POST /me/tokens.
type tokenBody struct {
	Name        string   `json:"name"`
	Permissions []string `json:"permissions"`
	ExpiresAt   int64    `json:"expires_at"`
}

func bindToken(in endpoint.Input, r *pb.CreateTokenRequest) error {
	var b tokenBody
	if err := in.DecodeJSON(&b); err != nil {
		return err
	}
	r.Name, r.Permissions, r.ExpiresAt = b.Name, b.Permissions, b.ExpiresAt
	return nil
}

func bindTokenID(in endpoint.Input, r *pb.RevokeTokenRequest) error {
	r.Id = in.Param("id")
	return nil
}

func tokenJSON(t *pb.Token) map[string]any {
	return map[string]any{
		"id": t.Id, "user_id": t.UserId, "name": t.Name, "permissions": endpoint.OrEmpty(t.Permissions),
		"created_at": t.CreatedAt, "expires_at": t.ExpiresAt, "last_used": t.LastUsed,
	}
}

func renderTokens(r *pb.ListTokensResponse) any {
	out := make([]map[string]any, 0, len(r.Tokens))
	for _, t := range r.Tokens {
		out = append(out, tokenJSON(t))
	}
	return map[string]any{"tokens": out}
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

// renderCeremony is a begun passkey ceremony as JSON: its id, and the
// options for navigator.credentials (create or get) as publicKey.
func renderCeremony(r *pb.BeginPasskeyResponse) any {
	return map[string]any{"ceremony": r.Ceremony, "publicKey": json.RawMessage(r.Options)}
}

func passkeyJSON(p *pb.Passkey) any {
	return map[string]any{"id": p.Id, "name": p.Name, "created_at": p.CreatedAt, "last_used": p.LastUsed}
}
