// Package endpoint is where each service declares what it serves: one line
// per RPC (its name, the permission it needs or whether it is public or open
// to any signed-in caller, whether it is safe to run twice and, when it is
// exposed over HTTP, its JSON route). That one line is read by the service's
// auth wrapper (internal/auth), by every client's retry rule
// (internal/platform), by the gateway's JSON routes (internal/web) and by the
// permission catalogue (Permissions, Uses).
package endpoint

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Permission names what a caller may do. Public and SignedIn are not
// permissions but the two other kinds of access an endpoint may have.
type Permission string

// Access that is not a permission.
const (
	// Public endpoints need no token (login, register, health).
	Public Permission = "public"
	// SignedIn endpoints need a live session or API key, and nothing more:
	// what they do is the caller's own (their account, their sessions).
	SignedIn Permission = "signed_in"
)

// The permissions. A role is a set of them; the built-in role admin holds
// every one.
const (
	UsersRead       Permission = "users.read"
	UsersWrite      Permission = "users.write"
	SessionsRevoke  Permission = "sessions.revoke"
	RolesRead       Permission = "roles.read"
	RolesWrite      Permission = "roles.write"
	ConfigRead      Permission = "config.read"
	ConfigWrite     Permission = "config.write"
	AuditRead       Permission = "audit.read"
	ServicesRead    Permission = "services.read"
	ServicesRestart Permission = "services.restart"
	OverviewRead    Permission = "overview.read"
	ClientsRead     Permission = "clients.read"
	ClientsWrite    Permission = "clients.write"
)

// Info describes a permission.
type Info struct {
	Name        Permission `json:"name"`
	Description string     `json:"description"`
}

// Permissions is the catalogue: every permission, once, with what it allows.
var Permissions = []Info{
	{OverviewRead, "see the admin overview: counts of users, sessions and services, logins per hour"},
	{UsersRead, "list accounts and see one with its live sessions and API keys"},
	{UsersWrite, "change an account's roles, disable, enable or delete it"},
	{SessionsRevoke, "end anyone's session and revoke anyone's API key"},
	{RolesRead, "list roles and the permission catalogue"},
	{RolesWrite, "create, change and delete roles"},
	{ConfigRead, "read the live config"},
	{ConfigWrite, "change the live config"},
	{AuditRead, "read the audit log"},
	{ServicesRead, "see registered services, supervised processes and their logs"},
	{ServicesRestart, "restart a supervised service"},
	{ClientsRead, "list the applications that sign in with Portal (OpenID clients)"},
	{ClientsWrite, "register, disable, rotate the secret of and delete applications that sign in with Portal"},
}

// Known reports whether p is in the catalogue.
func Known(p Permission) bool {
	return slices.ContainsFunc(Permissions, func(i Info) bool { return i.Name == p })
}

// All returns every permission's name, in catalogue order.
func All() []string {
	out := make([]string, len(Permissions))
	for i, p := range Permissions {
		out[i] = string(p.Name)
	}
	return out
}

// Endpoint is one RPC of a service.
type Endpoint struct {
	// Name is the RPC's go-micro endpoint, "User.ListUsers".
	Name string
	// Access is the permission the caller needs, or Public, or SignedIn.
	Access Permission
	// Retry says the call may run twice without harm: a client retries it
	// after a failure that may have reached the server (a timeout, a broken
	// connection). Any call that never reached a server is retried anyway.
	Retry bool
	// Routes expose the RPC in the gateway's JSON API (none: RPC only).
	Routes []*Route
}

// Table is a service's endpoints.
type Table struct {
	// Service is the go-micro service name ("user").
	Service   string
	Endpoints []Endpoint
	byName    map[string]*Endpoint
}

// Lookup returns the endpoint with the name.
func (t *Table) Lookup(name string) (*Endpoint, bool) {
	e, ok := t.byName[name]
	return e, ok
}

// declared are the tables of every service linked into this binary, by
// service name: filled once, while packages initialise, by Declare.
var (
	declaredMu sync.RWMutex
	declared   = map[string]*Table{}
)

// Declare makes a service's table and records it for Retryable and Tables.
// It panics on a mistake in the declaration (a name twice, a permission not
// in the catalogue, a route without a method and path), which is a bug that
// every test run would show.
func Declare(service string, eps ...Endpoint) *Table {
	t := &Table{Service: service, Endpoints: eps, byName: map[string]*Endpoint{}}
	for i := range t.Endpoints {
		e := &t.Endpoints[i]
		if _, dup := t.byName[e.Name]; dup {
			panic(fmt.Sprintf("endpoint: %s declared twice", e.Name))
		}
		if !strings.Contains(e.Name, ".") {
			panic(fmt.Sprintf("endpoint: %q is not Service.Method", e.Name))
		}
		if e.Access != Public && e.Access != SignedIn && !Known(e.Access) {
			panic(fmt.Sprintf("endpoint: %s needs %q, which is not in the catalogue", e.Name, e.Access))
		}
		for _, r := range e.Routes {
			if r == nil || r.Method == "" || r.Path == "" || r.call == nil {
				panic(fmt.Sprintf("endpoint: %s has an incomplete route", e.Name))
			}
		}
		t.byName[e.Name] = e
	}
	declaredMu.Lock()
	defer declaredMu.Unlock()
	if _, dup := declared[service]; dup {
		panic(fmt.Sprintf("endpoint: service %s declared twice", service))
	}
	declared[service] = t
	return t
}

// Retryable reports whether a call to endpoint of service may be retried
// after a failure that may have reached the server: only when its table says
// it is safe. An endpoint no table declares is not.
func Retryable(service, endpoint string) bool {
	declaredMu.RLock()
	t := declared[service]
	declaredMu.RUnlock()
	if t == nil {
		return false
	}
	e, ok := t.Lookup(endpoint)
	return ok && e.Retry
}

// Tables returns every declared table, by service name.
func Tables() []*Table {
	declaredMu.RLock()
	defer declaredMu.RUnlock()
	out := make([]*Table, 0, len(declared))
	for _, t := range declared {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Service < out[j].Service })
	return out
}

// Uses returns the endpoints of every declared table that need p, sorted.
func Uses(p Permission) []string {
	var out []string
	for _, t := range Tables() {
		for _, e := range t.Endpoints {
			if e.Access == p {
				out = append(out, e.Name)
			}
		}
	}
	sort.Strings(out)
	return out
}
