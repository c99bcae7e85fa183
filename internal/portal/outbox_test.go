package portal_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/portal-go/portal/internal/testenv"
	"github.com/portal-go/portal/internal/testenv/poll"
	pb "github.com/portal-go/portal/proto/user"
)

// userOutbox is the user service's outbox index in Redis (kv.Redis: the
// table, "#", the index).
const userOutbox = "portal:user:#outbox"

// TestOutboxSurvivesKill: with NATS down, a user process ends a session
// (session.revoked) and records audit entries, then dies by kill -9; once
// NATS is back and the process restarted, a subscriber receives the
// session.revoked event and the audit log holds the entries: both were kept
// in the user service's outbox (Redis), not in memory. The outbox is empty
// once the broker has acknowledged them.
func TestOutboxSurvivesKill(t *testing.T) {
	parallel(t)
	c := startCluster(t, "auth:\n  expireTime: 900\n  refreshTime: 300\n", map[string]string{"PORTAL_NATS_RECONNECT_WAIT": natsReconnectWait})
	c.start("user")
	c.start("system")
	c.start("web")
	w := c.clients(t)[0]
	const name, pw = "olga", "olga-password-1"
	w.register(name, pw)
	tok, _ := w.login(name, pw)
	me := w.expect(w.do("GET", "/api/v1/me", tok, nil), http.StatusOK).json(t)
	userID, _ := me["id"].(string)
	outboxLen := func() string {
		n, err := testenv.RedisDo(c.env.Redis.Addr, 2*time.Second, "ZCARD", userOutbox)
		if err != nil {
			t.Fatalf("ZCARD %s: %v", userOutbox, err)
		}
		return n
	}
	poll.Wait(t, 30*time.Second, "the outbox emptied by acknowledgements while NATS is up", func() bool { return outboxLen() == ":0" })

	c.env.NATS.Stop(t)
	poll.Wait(t, 30*time.Second, "the gateway's /readyz to report the broker down", func() bool {
		return w.do("GET", "/readyz", "", nil).StatusCode == http.StatusServiceUnavailable
	})
	// A logout (session.revoked and an audit entry) and a failed login (an
	// audit entry), NATS down.
	w.expect(w.do("POST", "/api/v1/logout", tok, nil), http.StatusNoContent)
	w.expect(w.do("POST", "/api/v1/login", "", map[string]string{"username": name, "password": "wrong-password-1"}), http.StatusUnauthorized)
	if n := outboxLen(); n == ":0" {
		t.Fatalf("outbox empty after a logout with NATS down")
	}
	c.users[0].Kill(t)
	c.users = nil

	c.env.NATS.Start(t)
	nc, err := nats.Connect(c.env.NATS.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	revoked := make(chan *nats.Msg, 16)
	if _, err := nc.ChanSubscribe("session.revoked", revoked); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	c.start("user")
	deadline := time.After(60 * time.Second)
	for got := false; !got; {
		select {
		case m := <-revoked:
			ev := decodeRevoked(t, m.Data)
			got = ev.UserId == userID
		case <-deadline:
			t.Fatalf("no session.revoked for %s within 60 s of the restart\n%s", userID, c.users[0].Tail(30))
		}
	}
	t.Logf("session.revoked kept through NATS down + kill -9 delivered %d ms after the restart", time.Since(restarted).Milliseconds())

	admin, _ := w.login("admin", testenv.AdminPassword)
	poll.Wait(t, 60*time.Second, "the outage's audit entries in the log", func() bool {
		out, _ := listAudit(t, w, admin, "kind=logout&user="+name)
		failed, _ := listAudit(t, w, admin, "kind=login_failed&user="+name)
		return len(out) == 1 && len(failed) == 1
	})
	t.Logf("audit entries of the outage stored %d ms after the restart", time.Since(restarted).Milliseconds())
	poll.Wait(t, 30*time.Second, "the outbox emptied once the broker acknowledged", func() bool { return outboxLen() == ":0" })
}

// decodeRevoked decodes a go-micro broker message (JSON envelope, body in
// the message's content type) carrying a session.revoked event.
func decodeRevoked(t *testing.T, data []byte) *pb.SessionRevoked {
	t.Helper()
	var env struct {
		Header map[string]string
		Body   []byte
	}
	if err := json.Unmarshal(data, &env); err != nil {
		t.Fatalf("session.revoked envelope: %v: %s", err, data)
	}
	ev := new(pb.SessionRevoked)
	var err error
	if strings.Contains(env.Header["Content-Type"], "json") {
		err = protojson.Unmarshal(env.Body, ev)
	} else {
		err = proto.Unmarshal(env.Body, ev)
	}
	if err != nil {
		t.Fatalf("session.revoked body (%s): %v", env.Header["Content-Type"], err)
	}
	return ev
}
