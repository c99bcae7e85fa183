package portal_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/portal-go/portal/internal/testenv"
	"github.com/portal-go/portal/internal/testenv/poll"
	"github.com/portal-go/portal/internal/testenv/portaltest"
)

// configKey is a key of GET /api/v1/admin/config/schema.
type configKey struct {
	Key         string          `json:"key"`
	Type        string          `json:"type"`
	Unit        string          `json:"unit"`
	Choices     []string        `json:"choices"`
	Default     json.RawMessage `json:"default"`
	Description string          `json:"description"`
}

// configVersion is a version of GET /api/v1/admin/config/history.
type configVersion struct {
	Version    int64  `json:"version"`
	Time       int64  `json:"time"`
	Origin     string `json:"origin"`
	ActorName  string `json:"actor_name"`
	RollbackOf int64  `json:"rollback_of"`
	Changes    []struct {
		Key string `json:"key"`
		Old string `json:"old"`
		New string `json:"new"`
	} `json:"changes"`
}

func configHistory(t *testing.T, c *client, tok string) (current int64, versions []configVersion) {
	t.Helper()
	var h struct {
		Current  int64           `json:"current"`
		Versions []configVersion `json:"versions"`
	}
	if err := json.Unmarshal(c.expect(c.do("GET", "/api/v1/admin/config/history", tok, nil), http.StatusOK).body, &h); err != nil {
		t.Fatal(err)
	}
	return h.Current, h.Versions
}

// TestConfigSchemaAPI: every key with its type, unit, default and a
// description in the caller's language; only for config.read.
func TestConfigSchemaAPI(t *testing.T) {
	parallel(t)
	p := portaltest.Start(t, portaltest.Options{})
	c := newClient(t, p)
	admin, _ := c.login("admin", testenv.AdminPassword)
	schema := func(lang string) map[string]configKey {
		var s struct{ Keys []configKey }
		r := c.expect(c.do("GET", "/api/v1/admin/config/schema", admin, nil, "Accept-Language", lang), http.StatusOK)
		if err := json.Unmarshal(r.body, &s); err != nil {
			t.Fatal(err)
		}
		out := map[string]configKey{}
		for _, k := range s.Keys {
			if k.Description == "" || len(k.Default) == 0 {
				t.Errorf("%s: key %s lacks a description or default: %+v", lang, k.Key, k)
			}
			out[k.Key] = k
		}
		return out
	}
	en, zh := schema("en"), schema("zh-CN")
	if k := en["auth.expireTime"]; k.Type != "duration" || k.Unit != "s" || string(k.Default) != "900" {
		t.Errorf("auth.expireTime = %+v", k)
	}
	if k := en["ui.language"]; k.Type != "choice" || strings.Join(k.Choices, ",") != "en,zh-CN" {
		t.Errorf("ui.language = %+v", k)
	}
	if k := en["auth.whiteList"]; k.Type != "list" || !strings.Contains(string(k.Default), "/login") {
		t.Errorf("auth.whiteList = %+v", k)
	}
	if len(en) < 15 || len(zh) != len(en) || zh["auth.expireTime"].Description == en["auth.expireTime"].Description {
		t.Errorf("%d keys in en, %d in zh-CN; descriptions %q / %q", len(en), len(zh), en["auth.expireTime"].Description, zh["auth.expireTime"].Description)
	}
}

// TestConfigHistoryAPI: every applied change is a version (who, when, which
// keys); the version is an optimistic lock (a stale edit or rollback is 409
// system.config_conflict and changes nothing); a rollback applies an old version as
// a new one and is audited as a rollback; a change made to the file by hand
// is a version too, from file; unknown versions and bad bodies are refused.
func TestConfigHistoryAPI(t *testing.T) {
	parallel(t)
	p := portaltest.Start(t, portaltest.Options{})
	c := newClient(t, p)
	admin, _ := c.login("admin", testenv.AdminPassword)
	cur, versions := configHistory(t, c, admin)
	if cur != 1 || len(versions) != 1 || versions[0].Origin != "built-in" {
		t.Fatalf("history at start: current %d, %+v", cur, versions)
	}

	// Two admins read version 1; the first saves, the second is refused.
	m := c.expect(c.do("PUT", "/api/v1/admin/config?version=1", admin, map[string]any{"auth": map[string]any{"expireTime": 600}}), http.StatusOK).json(t)
	if m["version"] != 2.0 {
		t.Errorf("PUT answered version %v, want 2", m["version"])
	}
	r := c.do("PUT", "/api/v1/admin/config?version=1", admin, map[string]any{"login": map[string]any{"maxFailures": 9}})
	if r.StatusCode != http.StatusConflict || errorCode(t, r) != "system.config_conflict" {
		t.Fatalf("stale PUT: %d %s, want 409 system.config_conflict", r.StatusCode, r.body)
	}
	cfg := c.expect(c.do("GET", "/api/v1/admin/config", admin, nil), http.StatusOK).json(t)
	if strings.Contains(cfg["yaml"].(string), "maxFailures: 9") || !strings.Contains(cfg["yaml"].(string), "expireTime: 600") {
		t.Errorf("after the refused edit: %s", cfg["yaml"])
	}
	c.expect(c.do("PUT", "/api/v1/admin/config?version=x", admin, map[string]any{}), http.StatusBadRequest)

	// Rollbacks: stale, unknown, malformed, then a good one.
	r = c.do("POST", "/api/v1/admin/config/rollback", admin, map[string]any{"version": 1, "base_version": 1})
	if r.StatusCode != http.StatusConflict || errorCode(t, r) != "system.config_conflict" {
		t.Errorf("stale rollback: %d %s", r.StatusCode, r.body)
	}
	r = c.do("POST", "/api/v1/admin/config/rollback", admin, map[string]any{"version": 99})
	if r.StatusCode != http.StatusNotFound || errorCode(t, r) != "system.config_version_unknown" {
		t.Errorf("rollback to an unknown version: %d %s", r.StatusCode, r.body)
	}
	for _, body := range []any{map[string]any{}, map[string]any{"version": "one"}, map[string]any{"version": 0}} {
		if r := c.do("POST", "/api/v1/admin/config/rollback", admin, body); r.StatusCode != http.StatusBadRequest {
			t.Errorf("rollback %v: %d %s, want 400", body, r.StatusCode, r.body)
		}
	}
	m = c.expect(c.do("POST", "/api/v1/admin/config/rollback", admin, map[string]any{"version": 1, "base_version": 2}), http.StatusOK).json(t)
	if m["version"] != 3.0 || !strings.Contains(m["yaml"].(string), "expireTime: 900") {
		t.Errorf("rollback answered %v", m)
	}
	cur, versions = configHistory(t, c, admin)
	if cur != 3 || len(versions) != 3 {
		t.Fatalf("history: current %d, %+v", cur, versions)
	}
	v3, v2 := versions[0], versions[1]
	if v3.Version != 3 || v3.Origin != "rollback" || v3.RollbackOf != 1 || v3.ActorName != "admin" || len(v3.Changes) != 1 ||
		v3.Changes[0].Key != "auth.expireTime" || v3.Changes[0].Old != "600" || v3.Changes[0].New != "900" {
		t.Errorf("version 3 = %+v", v3)
	}
	if v2.Origin != "edit" || v2.ActorName != "admin" || time.Since(time.Unix(v2.Time, 0)) > time.Minute {
		t.Errorf("version 2 = %+v", v2)
	}
	audit := c.expect(c.do("GET", "/api/v1/admin/audit?kind=config_rollback", admin, nil), http.StatusOK).json(t)
	entries := audit["entries"].([]any)
	if len(entries) != 1 || entries[0].(map[string]any)["actor_name"] != "admin" ||
		entries[0].(map[string]any)["detail"] != "to version 1: auth.expireTime: 600 -> 900" {
		t.Errorf("audited rollbacks: %v", entries)
	}

	// Changed at the file by hand: a version with no user.
	if err := os.WriteFile(p.ConfigFile, []byte("auth:\n  expireTime: 1200\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	poll.Wait(t, 10*time.Second, "the file's change in the history", func() bool {
		cur, _ := configHistory(t, c, admin)
		return cur == 4
	})
	if _, versions = configHistory(t, c, admin); versions[0].Origin != "file" || versions[0].ActorName != "" {
		t.Errorf("the file's version = %+v", versions[0])
	}

	// Without config.write: read the history, not roll back.
	c.register("cfg_reader", "cfg-reader-password")
	c.expect(c.do("POST", "/api/v1/admin/roles", admin, map[string]any{"name": "cfgread", "permissions": []string{"config.read"}}), http.StatusCreated)
	me := c.expect(c.do("GET", "/api/v1/admin/users?q=cfg_reader", admin, nil), http.StatusOK).json(t)
	id := me["users"].([]any)[0].(map[string]any)["id"].(string)
	c.expect(c.do("PATCH", "/api/v1/admin/users/"+id, admin, map[string]any{"roles": []string{"user", "cfgread"}}), http.StatusOK)
	reader, _ := c.login("cfg_reader", "cfg-reader-password")
	configHistory(t, c, reader)
	if r := c.do("POST", "/api/v1/admin/config/rollback", reader, map[string]any{"version": 1}); r.StatusCode != http.StatusForbidden {
		t.Errorf("rollback with config.read only: %d %s", r.StatusCode, r.body)
	}
	if cur, _ := configHistory(t, c, admin); cur != 4 {
		t.Errorf("the refused rollback made a version: current %d", cur)
	}
}

// TestConfigFormPages: the form reports every problem beside its field; a
// valid form shows the changes to confirm; the confirmed post saves and
// redirects; a second admin's confirm made from the older version is a
// conflict that keeps their text; a rollback asks first, naming the change.
func TestConfigFormPages(t *testing.T) {
	parallel(t)
	p := portaltest.Start(t, portaltest.Options{})
	c := newClient(t, p)
	admin, _ := c.login("admin", testenv.AdminPassword)
	csrf := csrfFor(t, c, admin)
	page := string(c.expect(c.do("GET", "/admin/config", admin, nil), http.StatusOK).body)
	for _, want := range []string{`id="auth-expireTime"`, `type="number"`, `id="accounts-selfRegistration" value="true" checked`,
		`id="yaml"`, `id="history"`, `id="version-1"`, `name="version" value="1"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the config page lacks %s", want)
		}
	}
	form := func(changes map[string]string) url.Values {
		f := url.Values{"from": {"form"}, "version": {"1"}, "accounts.selfRegistration": {"true"},
			"auth.whiteList": {"/login\n/register\n/static/*\n/api/v1/login\n/healthz\n/readyz"}}
		for _, k := range []string{"auth.expireTime:900", "auth.refreshTime:300", "auth.sessionMaxAge:86400", "login.maxFailures:5",
			"login.lockoutSeconds:300", "login.addressMaxFailures:0", "login.accountMaxFailures:0", "rateLimit.windowSeconds:60",
			"rateLimit.loginPerAddress:60", "rateLimit.loginPerAccount:30", "rateLimit.registerPerAddress:20",
			"rateLimit.registerPerAccount:5", "accounts.publicURL:http://localhost:8080", "ui.language:en", "ui.exportMaxRows:10000"} {
			kv := strings.SplitN(k, ":", 2)
			f.Set(kv[0], kv[1])
		}
		for k, v := range changes {
			f.Set(k, v)
		}
		return f
	}
	r := postForm(c, admin, csrf, "/admin/config", form(map[string]string{"auth.expireTime": "soon", "login.maxFailures": "0", "ui.language": "fr"}))
	if r.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad form: %d", r.StatusCode)
	}
	for _, want := range []string{`id="auth-expireTime-error"`, `id="login-maxFailures-error"`, `id="ui-language-error"`, `3 problems`, `value="soon"`} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("the refused form lacks %s", want)
		}
	}
	r = c.expect(postForm(c, admin, csrf, "/admin/config", form(map[string]string{"auth.expireTime": "600"})), http.StatusOK)
	if !strings.Contains(string(r.body), "auth.expireTime: 900 → 600") || !strings.Contains(string(r.body), `id="do-confirm"`) {
		t.Fatalf("the diff page: %s", r.body)
	}
	// Both confirm (two tabs, or two admins): the first wins.
	confirmed := url.Values{"confirmed": {"yes"}, "version": {"1"}, "yaml": {"auth:\n  expireTime: 600\n"}}
	r = c.expect(postForm(c, admin, csrf, "/admin/config", confirmed), http.StatusSeeOther)
	if loc := r.Header.Get("Location"); loc != "/admin/config?done=config" {
		t.Errorf("saved: redirected to %q", loc)
	}
	confirmed.Set("yaml", "login:\n  maxFailures: 9\n")
	r = c.expect(postForm(c, admin, csrf, "/admin/config", confirmed), http.StatusConflict)
	if !strings.Contains(string(r.body), `id="config-general"`) || !strings.Contains(string(r.body), "maxFailures: 9") || !strings.Contains(string(r.body), `name="version" value="2"`) {
		t.Errorf("the conflict page does not say so, keep the text, or offer the new version: %s", r.body)
	}
	// A review started from version 1 is sent back too.
	c.expect(postForm(c, admin, csrf, "/admin/config", form(map[string]string{"auth.expireTime": "700"})), http.StatusConflict)

	// Roll back to version 1: asked first, naming the change.
	r = c.expect(postForm(c, admin, csrf, "/admin/config/rollback", url.Values{"to": {"1"}, "version": {"2"}}), http.StatusOK)
	if !strings.Contains(string(r.body), "auth.expireTime: 600 → 900") || !strings.Contains(string(r.body), `id="do-confirm"`) {
		t.Fatalf("the rollback's confirm page: %s", r.body)
	}
	r = c.expect(postForm(c, admin, csrf, "/admin/config/rollback", url.Values{"to": {"1"}, "version": {"2"}, "confirmed": {"yes"}}), http.StatusSeeOther)
	if loc := r.Header.Get("Location"); loc != "/admin/config?done=config_rollback" {
		t.Errorf("rolled back: redirected to %q", loc)
	}
	if cur, _ := configHistory(t, c, admin); cur != 3 {
		t.Errorf("after the rollback: version %d, want 3", cur)
	}
	c.expect(postForm(c, admin, csrf, "/admin/config/rollback", url.Values{"to": {"77"}, "version": {"3"}}), http.StatusNotFound)
}
