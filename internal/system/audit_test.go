package system

import (
	"context"
	"errors"
	"testing"

	"go-micro.dev/v4/events"
	"go-micro.dev/v4/store"

	"github.com/portal-go/portal/internal/audit"
	pb "github.com/portal-go/portal/proto/system"
)

// downStream is an audit stream whose broker is away: every publish fails.
type downStream struct{ events.Stream }

func (downStream) Publish(string, interface{}, ...events.PublishOption) error {
	return errors.New("nats: no servers available for connection")
}

// TestOwnEntriesStoredWithoutTheBroker: the system service's own entries
// (config changes, service restarts) go straight into the log it keeps, so
// that a broker outage, and a crash while it lasts, cannot lose them.
func TestOwnEntriesStoredWithoutTheBroker(t *testing.T) {
	l := audit.NewLog(store.NewMemoryStore(), audit.LogOptions{})
	a := AuditOn(l, audit.NewPublisher(downStream{}, nil))
	a.Record(context.Background(), &pb.AuditEntry{Kind: string(audit.KindConfigChange), ActorId: "u1", ActorName: "admin", Detail: "auth.expireTime"})
	page, err := l.List(context.Background(), audit.Query{Kind: audit.KindConfigChange, Total: true})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(page.Entries) != 1 || page.Entries[0].ActorName != "admin" || page.Entries[0].Detail != "auth.expireTime" || page.Entries[0].ID == "" {
		t.Fatalf("entries %+v, want the config change, stored while the broker was down", page.Entries)
	}
}
