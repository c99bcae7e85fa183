package user

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/portal-go/portal/internal/kv"
)

// The users list: sorted by one of three indexes, filtered by name (on the
// index members), and by role, status, creation and last sign-in.
//
// Indexes, besides ixUsers ("<lowercased name> <id>"), kept in the step
// that writes the record:
//
//	ucreated: "<creation position> <lowercased name> <id>"
//	ulogin:   "<last sign-in position> <lowercased name> <id>" (position
//	          0 for an account never signed in); login/<id> holds the
//	          member, so that the next sign-in can replace it.
//
// A filter the sort's index answers (a name, or a range of the sorted
// field) costs one read of the page's members; the others need records,
// read maxUserScan at most per request (a partial answer says so, and
// its cursor goes on from there).
const (
	ixCreated = "ucreated"
	ixLogin   = "ulogin"
	keyLogin  = "login/" // login/<id> -> its member of ixLogin
)

// maxUserScan bounds how many accounts' records one request of the users
// list reads to apply a filter that needs them (role, status, a date the
// sort's index does not order); a variable for tests.
var maxUserScan = 5000

// scanBatch is how many index members (and records) one read takes while
// scanning.
const scanBatch = 250

// neverPosition is the ixLogin position of an account never signed in.
var neverPosition = endPosition(time.Unix(0, 0))

// The sorts and statuses of the users list.
var (
	UserSorts    = []string{"name", "created", "last_login"}
	UserStatuses = []string{"active", "disabled", "locked", "unverified"}
)

// ErrBadQuery: a users list asked for an unknown sort or status, or a
// cursor no list gave.
var ErrBadQuery = errors.New("user: unknown sort, status or cursor for the users list")

// createdMember and loginMember are u's members of ixCreated and ixLogin.
func createdMember(u *User) string {
	return endPosition(u.CreatedAt) + " " + strings.ToLower(u.Username) + " " + u.ID
}

func loginMember(u *User, at time.Time) string {
	pos := neverPosition
	if !at.IsZero() {
		pos = endPosition(at)
	}
	return pos + " " + strings.ToLower(u.Username) + " " + u.ID
}

// listOps index a new account: created now, never signed in.
func listOps(u *User) []kv.Op {
	never := loginMember(u, time.Time{})
	return []kv.Op{kv.AddOp(ixCreated, createdMember(u)), kv.AddOp(ixLogin, never), kv.PutOp(keyLogin+u.ID, []byte(never), 0)}
}

// memberParts splits a member of ixUsers, ixCreated or ixLogin.
func memberParts(m string) (pos, name, id string) {
	f := strings.Split(m, " ")
	switch len(f) {
	case 2:
		return "", f[0], f[1]
	case 3:
		return f[0], f[1], f[2]
	}
	return "", "", ""
}

// positionTime is the time of a position, zero for neverPosition.
func positionTime(pos string) time.Time {
	ns, err := strconv.ParseInt(pos, 10, 64)
	if err != nil || pos == neverPosition {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// RecordLogin makes at u's last sign-in. A sign-in racing another may
// lose to it (both are "now"); it never brings back a deleted account.
func (r *Repo) RecordLogin(ctx context.Context, u *User, at time.Time) error {
	next := loginMember(u, at)
	for range 3 {
		vals, err := r.kv.Get(keyLogin + u.ID)
		if err != nil {
			return storeError("read", err)
		}
		ops := []kv.Op{kv.CheckOp(keyUser+u.ID, kv.Exists), kv.AddOp(ixLogin, next)}
		if old := vals[0]; old != nil {
			ops = append(ops, kv.PutOp(keyLogin+u.ID, []byte(next), 0).WhenEqual(old), kv.RemoveOp(ixLogin, string(old)))
		} else {
			ops = append(ops, kv.PutOp(keyLogin+u.ID, []byte(next), 0).When(kv.Absent))
		}
		if ok, err := r.apply(ops...); err != nil || ok {
			return err
		}
	}
	return nil
}

// UserQuery selects and orders accounts for ListUsers.
type UserQuery struct {
	// Name keeps accounts whose lowercased name contains it.
	Name string
	// Sort is one of UserSorts ("" is name); Desc reverses it.
	Sort string
	Desc bool
	// Created and Login bound the creation and last sign-in: From <= t <
	// To, zero for unbounded. An account never signed in signed in at 0.
	CreatedFrom, CreatedTo, LoginFrom, LoginTo time.Time
	// Keep, when set, keeps the accounts it holds true for: it needs their
	// records (and, with Failures, their account failure counters).
	Keep     func(Listed) bool
	Failures bool
	// Offset and Limit page the matches; Cursor (a Next) replaces Offset.
	Offset, Limit int
	Cursor        string
	// Total asks for UserList.Total.
	Total bool
}

// Listed is an account as the users list shows it.
type Listed struct {
	*User
	LastLogin time.Time
	// Failures is the account's failed sign-ins in the current window.
	Failures int
}

// UserList is a page of accounts.
type UserList struct {
	Users []Listed
	Total int
	// Next is the cursor of the next page, "" when none.
	Next string
	// Partial: Keep was asked of maxUserScan accounts and the scan stopped.
	Partial bool
}

// listRange is the index and range a query walks, with the bounds of its
// sorted field pushed into it.
func (q UserQuery) listRange() (string, kv.Range, error) {
	var r kv.Range
	var from, to time.Time
	index := ixUsers
	switch q.Sort {
	case "", "name":
	case "created":
		index, from, to = ixCreated, q.CreatedFrom, q.CreatedTo
	case "last_login":
		index, from, to = ixLogin, q.LoginFrom, q.LoginTo
	default:
		return "", r, ErrBadQuery
	}
	if !from.IsZero() {
		r.After = endPosition(from) // a bare position sorts before its members
	}
	if !to.IsZero() {
		r.Before = endPosition(to)
	}
	r.Desc = q.Desc
	if q.Cursor != "" {
		if _, _, id := memberParts(q.Cursor); id == "" {
			return "", r, ErrBadQuery
		}
		if q.Desc && (r.Before == "" || q.Cursor < r.Before) {
			r.Before = q.Cursor
		}
		if !q.Desc && q.Cursor > r.After {
			r.After = q.Cursor
		}
	}
	return index, r, nil
}

// residual reports whether l passes the date bounds the index did not
// apply.
func (q UserQuery) residual(l Listed) bool {
	in := func(t, from, to time.Time) bool {
		return (from.IsZero() || !t.Before(from)) && (to.IsZero() || t.Before(to))
	}
	return (q.Sort == "created" || in(l.CreatedAt, q.CreatedFrom, q.CreatedTo)) &&
		(q.Sort == "last_login" || in(l.LastLogin, q.LoginFrom, q.LoginTo))
}

// needsRecords reports whether q filters on anything but the index: its
// bounded scan reads the records.
func (q UserQuery) needsRecords() bool {
	byCreated := (!q.CreatedFrom.IsZero() || !q.CreatedTo.IsZero()) && q.Sort != "created"
	byLogin := (!q.LoginFrom.IsZero() || !q.LoginTo.IsZero()) && q.Sort != "last_login"
	return q.Keep != nil || byCreated || byLogin
}

// ListUsers returns a page of the accounts q selects, in its order.
//
// Cost: with a name at most, one read of the page's index members (and a
// count, or a walk of the members' names, for Total) and one of their
// records; with a filter on the records, a walk of the index reading at
// most maxUserScan records.
func (r *Repo) ListUsers(ctx context.Context, q UserQuery) (UserList, error) {
	index, rg, err := q.listRange()
	if err != nil {
		return UserList{}, err
	}
	q.Limit = min(max(q.Limit, 1), maxLimit)
	if q.Cursor != "" {
		q.Offset = 0
	}
	if q.Name == "" && !q.needsRecords() {
		return r.listPlain(ctx, q, index, rg)
	}
	var out UserList
	var page []string
	var pageListed []Listed
	matched, scanned, lastExamined := 0, 0, ""
	match := func(m string, l *Listed) {
		if matched >= q.Offset && len(page) < q.Limit {
			page = append(page, m)
			if l != nil {
				pageListed = append(pageListed, *l)
			}
		}
		matched++
	}
	for {
		rg.Limit = scanBatch
		ms, err := r.kv.Members(index, rg)
		if err != nil {
			return UserList{}, storeError("list", err)
		}
		var cands []string
		for _, m := range ms {
			if _, name, _ := memberParts(m); strings.Contains(name, q.Name) {
				cands = append(cands, m)
			}
		}
		if q.needsRecords() {
			if scanned+len(cands) > maxUserScan {
				cands, out.Partial = cands[:maxUserScan-scanned], true
			}
			scanned += len(cands)
			ls, err := r.listed(ctx, cands, q.Failures)
			if err != nil {
				return UserList{}, err
			}
			for _, l := range ls {
				if q.residual(l.Listed) && (q.Keep == nil || q.Keep(l.Listed)) {
					match(l.member, &l.Listed)
				}
			}
			if out.Partial {
				if len(cands) > 0 {
					lastExamined = cands[len(cands)-1]
				}
				break
			}
		} else {
			for _, m := range cands {
				match(m, nil)
			}
		}
		if len(ms) > 0 {
			lastExamined = ms[len(ms)-1]
		}
		if len(ms) < scanBatch || (!q.Total && matched > q.Offset+q.Limit) {
			break
		}
		q.advance(&rg, lastExamined)
	}
	switch {
	case matched > q.Offset+q.Limit:
		out.Next = page[len(page)-1]
	case out.Partial:
		out.Next = lastExamined
	}
	if q.Total {
		out.Total = matched
	}
	if !q.needsRecords() {
		// Matched on names only: the page's records are read now.
		ls, err := r.listed(ctx, page, true)
		if err != nil {
			return UserList{}, err
		}
		for _, l := range ls {
			out.Users = append(out.Users, l.Listed)
		}
		return out, nil
	}
	out.Users = pageListed
	if !q.Failures {
		if err := r.addFailures(ctx, out.Users); err != nil {
			return UserList{}, err
		}
	}
	return out, nil
}

// advance moves rg past member m, in its direction.
func (q UserQuery) advance(rg *kv.Range, m string) {
	if q.Desc {
		rg.Before = m
	} else {
		rg.After = m
	}
}

// listPlain pages through index with no filter beyond its range.
func (r *Repo) listPlain(ctx context.Context, q UserQuery, index string, rg kv.Range) (UserList, error) {
	var out UserList
	if q.Total {
		n, err := r.countRange(index, rg)
		if err != nil {
			return UserList{}, err
		}
		out.Total = n
	}
	rg.Offset, rg.Limit = q.Offset, q.Limit+1
	ms, err := r.kv.Members(index, rg)
	if err != nil {
		return UserList{}, storeError("list", err)
	}
	if len(ms) > q.Limit {
		ms = ms[:q.Limit]
		out.Next = ms[q.Limit-1]
	}
	ls, err := r.listed(ctx, ms, true)
	if err != nil {
		return UserList{}, err
	}
	for _, l := range ls {
		out.Users = append(out.Users, l.Listed)
	}
	return out, nil
}

// countRange counts the members of index within rg's bounds (which are
// positions no member equals, or members).
func (r *Repo) countRange(index string, rg kv.Range) (int, error) {
	from := rg.After
	if from != "" {
		from += "\x00" // exclusive
	}
	n, err := r.kv.Count(index, from, 0)
	if err == nil && rg.Before != "" {
		var above int
		above, err = r.kv.Count(index, rg.Before, 0)
		n = max(n-above, 0)
	}
	if err != nil {
		return 0, storeError("count", err)
	}
	return n, nil
}

// listedMember is a Listed with the index member it was read for.
type listedMember struct {
	Listed
	member string
}

// listed reads the accounts that members name, their last sign-in and, with
// failures, their account failure counters; deleted accounts are skipped.
func (r *Repo) listed(ctx context.Context, members []string, failures bool) ([]listedMember, error) {
	if len(members) == 0 {
		return nil, nil
	}
	keys := make([]string, 0, 2*len(members))
	for _, m := range members {
		_, _, id := memberParts(m)
		keys = append(keys, keyUser+id, keyLogin+id)
	}
	vals, err := r.read(ctx, keys...)
	if err != nil {
		return nil, err
	}
	out := make([]listedMember, 0, len(members))
	for i, m := range members {
		var u User
		if err := decodeJSON(keys[2*i], vals[2*i], &u); errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile
		} else if err != nil {
			return nil, err
		}
		l := listedMember{Listed: Listed{User: &u}, member: m}
		if v := vals[2*i+1]; v != nil {
			pos, _, _ := memberParts(string(v))
			l.LastLogin = positionTime(pos)
		}
		out = append(out, l)
	}
	if failures {
		ls := make([]Listed, len(out))
		for i := range out {
			ls[i] = out[i].Listed
		}
		if err := r.addFailures(ctx, ls); err != nil {
			return nil, err
		}
		for i := range out {
			out[i].Failures = ls[i].Failures
		}
	}
	return out, nil
}

// addFailures reads the account failure counters of ls.
func (r *Repo) addFailures(ctx context.Context, ls []Listed) error {
	if len(ls) == 0 {
		return nil
	}
	keys := make([]string, len(ls))
	for i, l := range ls {
		keys[i] = kindAccount.prefix + strings.ToLower(l.Username)
	}
	vals, err := r.read(ctx, keys...)
	if err != nil {
		return err
	}
	for i, v := range vals {
		var f failures
		if v != nil && decodeJSON(keys[i], v, &f) == nil {
			ls[i].Failures = f.Count
		}
	}
	return nil
}

// String describes q for the audit log.
func (q UserQuery) String() string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	day := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	add("q", q.Name)
	add("sort", q.Sort)
	if q.Desc {
		add("order", "desc")
	}
	add("created_from", day(q.CreatedFrom))
	add("created_to", day(q.CreatedTo))
	add("login_from", day(q.LoginFrom))
	add("login_to", day(q.LoginTo))
	return strings.Join(parts, " ")
}
