package portal_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portal-go/portal/internal/testenv"
	"github.com/portal-go/portal/internal/testenv/poll"
	"github.com/portal-go/portal/internal/testenv/portaltest"
)

// natsReconnectWait is the tests' bound on the wait between reconnects to
// NATS: nats.go's defaults (60 attempts, then closed for good) would give up
// after about 3 s of it, so an outage of natsOutage outlasts them.
const (
	natsReconnectWait = "50ms"
	natsOutage        = 8 * time.Second
)

// TestNATSOutage: with NATS down, a gateway says it is not ready and trusts
// no cached verdict (a logout elsewhere is refused on the next request); an
// outage longer than nats.go's default reconnect window ends in every
// process reconnecting; afterwards revocations travel as events again, and
// the audit entries published during the outage reach the log.
func TestNATSOutage(t *testing.T) {
	parallel(t)
	c := startCluster(t, "auth:\n  expireTime: 900\n  refreshTime: 300\n", map[string]string{"PORTAL_NATS_RECONNECT_WAIT": natsReconnectWait})
	c.start("user")
	c.start("system")
	c.start("web")
	c.start("web")
	ws := c.clients(t)
	const name, pw = "nora", "nora-password-1"
	ws[0].register(name, pw)
	tokA, _ := ws[0].login(name, pw)
	tokB, _ := ws[0].login(name, pw)
	for _, tok := range []string{tokA, tokB} {
		ws[1].expect(ws[1].do("GET", "/api/v1/me", tok, nil), http.StatusOK) // cached on web2
	}

	c.env.NATS.Stop(t)
	stopped := time.Now()
	poll.Wait(t, 30*time.Second, "web2's /readyz to report the broker down", func() bool {
		r := ws[1].do("GET", "/readyz", "", nil)
		return r.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(r.body), `"web.broker"`) &&
			!strings.Contains(string(r.body), `"web.broker":"ok"`)
	})
	// The logout's event cannot reach web2: it asks the user service.
	ws[0].expect(ws[0].do("POST", "/api/v1/logout", tokA, nil), http.StatusNoContent)
	if code := errorCode(t, ws[1].expect(ws[1].do("GET", "/api/v1/me", tokA, nil), http.StatusUnauthorized)); code != "auth.session_ended" && code != "auth.invalid_token" {
		t.Fatalf("web2, NATS down, after logout on web1: code %q", code)
	}
	ws[1].expect(ws[1].do("GET", "/api/v1/me", tokB, nil), http.StatusOK)

	// Longer than nats.go's default reconnect window at this wait.
	time.Sleep(time.Until(stopped.Add(natsOutage)))
	ws[0].expect(ws[0].do("POST", "/api/v1/logout", tokB, nil), http.StatusNoContent)
	c.env.NATS.Start(t)
	back := time.Now()
	for i, w := range ws {
		poll.Wait(t, 60*time.Second, "a gateway ready after NATS came back", func() bool {
			return w.do("GET", "/readyz", "", nil).StatusCode == http.StatusOK
		})
		t.Logf("web%d ready %d ms after NATS came back", i+1, time.Since(back).Milliseconds())
	}
	ws[1].expect(ws[1].do("GET", "/api/v1/me", tokB, nil), http.StatusUnauthorized)

	// Events flow again: a verdict web2 caches now ends with the event of a
	// logout on web1, long before the verdict's 30 s.
	tokC, _ := ws[0].login(name, pw)
	ws[1].expect(ws[1].do("GET", "/api/v1/me", tokC, nil), http.StatusOK)
	ws[0].expect(ws[0].do("POST", "/api/v1/logout", tokC, nil), http.StatusNoContent)
	loggedOut := time.Now()
	poll.Wait(t, 10*time.Second, "web2 to refuse a session ended on web1 after the outage", func() bool {
		return ws[1].do("GET", "/api/v1/me", tokC, nil).StatusCode == http.StatusUnauthorized
	})
	t.Logf("after the outage, a logout on web1 refused on web2 after %d ms", time.Since(loggedOut).Milliseconds())

	// The two logouts of the outage are in the audit log.
	admin, _ := ws[0].login("admin", testenv.AdminPassword)
	poll.Wait(t, 30*time.Second, "the outage's logouts in the audit log", func() bool {
		entries, _ := listAudit(t, ws[0], admin, "kind=logout&user="+name)
		return len(entries) >= 3
	})
	t.Logf("audit entries of the outage stored %d ms after NATS came back", time.Since(back).Milliseconds())
}

// TestReadyzDataDir: a full or read-only data dir makes the gateway's
// /readyz answer 503 naming it (issue 18, finding 9: it said ready while
// every write failed), and ready again once the disk has room.
func TestReadyzDataDir(t *testing.T) {
	parallel(t)
	disk := testenv.MountSmallDisk(t, 32<<20)
	p := portaltest.Start(t, portaltest.Options{DataDir: disk.Dir})
	c := newClient(t, p)
	c.expect(c.do("GET", "/readyz", "", nil), http.StatusOK)
	free := disk.Fill(t)
	r := c.expect(c.do("GET", "/readyz", "", nil), http.StatusServiceUnavailable)
	if checks, _ := r.json(t)["checks"].(map[string]any); checks["web.data_dir"] == "ok" || checks["web.data_dir"] == nil {
		t.Fatalf("full disk: checks %v, want web.data_dir failing", checks)
	}
	free()
	c.expect(c.do("GET", "/readyz", "", nil), http.StatusOK)
}
