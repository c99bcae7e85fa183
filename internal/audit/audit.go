// Package audit is Portal's audit log: who did what to whom, when, from where.
//
// Services describe what happened as an Entry and hand it to a Publisher,
// which puts it on an events.Stream (go-micro's events component) under
// Topic. The system service runs a Consumer: a durable consumer group
// (Group) that stores each entry in a Log, kept in the system service's
// store.Store, and acknowledges the event only once the entry is stored. A
// redelivered entry (same ID) is stored once.
//
// The stream is a MemoryStream when every service runs in one process, and a
// NATSStream (NATS JetStream) when they run in several: entries published
// while the system service is down wait in JetStream until it is back.
package audit

import (
	"errors"
	"regexp"
	"time"
)

// Topic is the events topic audit entries travel on.
const Topic = "audit"

// Group is the durable consumer group of the system service: every instance
// consumes as this group, so each entry is stored by one of them.
const Group = "system"

// Kind says what an Entry records.
type Kind string

// The kinds of entry.
const (
	KindRegister       Kind = "register"                 // an account was created
	KindLogin          Kind = "login"                    // a login succeeded
	KindLoginFailed    Kind = "login_failed"             // a login was refused: bad credentials or a disabled account
	KindLockout        Kind = "lockout"                  // failed logins reached login.maxFailures: logins refused for a while
	KindLogout         Kind = "logout"                   // a user ended their own session
	KindPasswordChange Kind = "password_change"          // a user changed their password
	KindRoleChange     Kind = "role_change"              // an admin changed a user's roles
	KindDisable        Kind = "disable"                  // an admin disabled a user
	KindEnable         Kind = "enable"                   // an admin enabled a user
	KindDelete         Kind = "delete"                   // an admin deleted a user
	KindSessionEnded   Kind = "session_ended"            // a session was ended other than by its own logout
	KindConfigChange   Kind = "config_change"            // the live config was changed
	KindConfigRollback Kind = "config_rollback"          // an admin put a past version of the config back
	KindLockoutLifted  Kind = "lockout_lifted"           // an admin lifted a lockout
	KindRoleCreated    Kind = "role_created"             // a role was made, with its permissions
	KindRoleUpdated    Kind = "role_updated"             // a role's permissions changed
	KindRoleDeleted    Kind = "role_deleted"             // a role was deleted
	KindTokenCreated   Kind = "token_created"            // an API key was made, with its permissions and expiry
	KindTokenRevoked   Kind = "token_revoked"            // an API key was revoked, by its owner or an admin
	KindProfileChange  Kind = "profile_change"           // a user changed their display name or email
	KindEmailVerified  Kind = "email_verified"           // a verification link was followed
	KindResetRequested Kind = "password_reset_requested" // a reset link was mailed
	KindPasswordReset  Kind = "password_reset"           // a password was set from a reset link
	KindFactorsChange  Kind = "factors_change"           // a second factor was enrolled or removed
	KindOIDCClient     Kind = "oidc_client"              // an admin registered, changed or deleted an OpenID client
	KindOIDCGrant      Kind = "oidc_grant"               // a user signed in to an application through Portal (a grant began)
	KindOIDCConsent    Kind = "oidc_consent"             // a user gave or withdrew consent to an application
	KindOIDCToken      Kind = "oidc_token"               // tokens were issued to an application (code exchange or refresh)
	KindOIDCRevoke     Kind = "oidc_revoke"              // an application's grant or token ended: revocation, reuse, logout, session end
)

// Kinds lists every Kind, in the order above.
var Kinds = []Kind{
	KindRegister, KindLogin, KindLoginFailed, KindLockout, KindLogout, KindPasswordChange,
	KindRoleChange, KindDisable, KindEnable, KindDelete, KindSessionEnded, KindConfigChange,
	KindConfigRollback, KindLockoutLifted,
	KindRoleCreated, KindRoleUpdated, KindRoleDeleted, KindTokenCreated, KindTokenRevoked,
	KindProfileChange, KindEmailVerified, KindResetRequested, KindPasswordReset, KindFactorsChange,
	KindOIDCClient, KindOIDCGrant, KindOIDCConsent, KindOIDCToken, KindOIDCRevoke,
}

// Valid reports whether k is one of Kinds.
func (k Kind) Valid() bool {
	for _, v := range Kinds {
		if k == v {
			return true
		}
	}
	return false
}

// Entry is one audit record. The actor did it; the subject is whom it was
// done to (the same user for a login or a password change). Names are as
// they were when it happened.
type Entry struct {
	// ID identifies the entry (Publish makes one): storing the same ID twice
	// stores it once.
	ID string `json:"id"`
	// Time is when it happened (Publish sets now when zero).
	Time        time.Time `json:"time"`
	Kind        Kind      `json:"kind"`
	ActorID     string    `json:"actor_id,omitempty"`
	ActorName   string    `json:"actor_name,omitempty"`
	SubjectID   string    `json:"subject_id,omitempty"`
	SubjectName string    `json:"subject_name,omitempty"`
	// ClientAddr is the client's address as the gateway saw it, when known.
	ClientAddr string `json:"client_addr,omitempty"`
	// Detail is free text: what changed, why a login failed.
	Detail string `json:"detail,omitempty"`
}

// Field limits: Log.Append cuts longer values to these many characters.
const (
	maxName   = 128
	maxAddr   = 64
	maxDetail = 2000
)

// Errors.
var (
	// ErrInvalid: the entry has no valid ID, Kind or Time.
	ErrInvalid = errors.New("audit: invalid entry")
	// ErrExpired: the entry is older than the log keeps.
	ErrExpired = errors.New("audit: entry older than the retention")
	// ErrBadCursor: Query.Cursor is not one a Page gave.
	ErrBadCursor = errors.New("audit: bad cursor")
	// ErrNotFound: no entry has the ID.
	ErrNotFound = errors.New("audit: not found")
	// ErrClosed: the stream is closed.
	ErrClosed = errors.New("audit: stream closed")
	// ErrFull: a memory stream's queue is full (no consumer keeps up).
	ErrFull = errors.New("audit: stream queue full")
)

// validID is what an entry ID may be: it becomes part of store keys.
var validID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// normalize checks e and cuts its free-text fields to size.
func normalize(e Entry) (Entry, error) {
	if !validID.MatchString(e.ID) || !e.Kind.Valid() || e.Time.IsZero() || e.Time.Unix() < 0 {
		return e, ErrInvalid
	}
	e.Time = e.Time.UTC()
	e.ActorID, e.ActorName = cut(e.ActorID, maxName), cut(e.ActorName, maxName)
	e.SubjectID, e.SubjectName = cut(e.SubjectID, maxName), cut(e.SubjectName, maxName)
	e.ClientAddr, e.Detail = cut(e.ClientAddr, maxAddr), cut(e.Detail, maxDetail)
	return e, nil
}

// cut returns s cut to n characters.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	r := []rune(s)
	if len(r) > n {
		return string(r[:n])
	}
	return s
}
