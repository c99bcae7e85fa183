package system

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	merrors "go-micro.dev/v4/errors"

	"github.com/portal-go/portal/internal/audit"
	pb "github.com/portal-go/portal/proto/system"
)

// AuditOn is the system service's Audit: the log it keeps (fed by its
// consumer of the audit stream) and a publisher for its own entries.
func AuditOn(l *audit.Log, p *audit.Publisher) Audit { return auditLog{l, p} }

type auditLog struct {
	log *audit.Log
	pub *audit.Publisher
}

func (a auditLog) List(ctx context.Context, f AuditFilter) ([]*pb.AuditEntry, int, string, error) {
	// The log's own default (0: audit.DefaultLimit) stands; the proto caps a
	// page at 200.
	limit := min(max(f.Limit, 0), 200)
	page, err := a.log.List(ctx, audit.Query{User: f.User, Kind: audit.Kind(f.Kind), Cursor: f.Cursor, Limit: limit, From: f.From, To: f.To, Total: true})
	if err != nil {
		return nil, 0, "", err
	}
	out := make([]*pb.AuditEntry, 0, len(page.Entries))
	for _, e := range page.Entries {
		out = append(out, &pb.AuditEntry{
			Id: e.ID, Time: e.Time.UnixMilli(), Kind: string(e.Kind), ActorId: e.ActorID, ActorName: e.ActorName,
			SubjectId: e.SubjectID, SubjectName: e.SubjectName, ClientAddr: e.ClientAddr, Detail: e.Detail,
		})
	}
	return out, page.Total, page.Next, nil
}

func (a auditLog) Hourly(ctx context.Context) ([]*pb.HourCount, error) {
	hours, err := a.log.CountsByHour(ctx, 24, audit.KindLogin, audit.KindLoginFailed)
	if err != nil {
		return nil, err
	}
	out := make([]*pb.HourCount, 0, len(hours))
	for _, h := range hours {
		out = append(out, &pb.HourCount{
			Hour: h.Start.Unix(), Logins: int32(h.Counts[audit.KindLogin]), FailedLogins: int32(h.Counts[audit.KindLoginFailed]),
		})
	}
	return out, nil
}

// Record stores the system service's own entry in the log it keeps, before
// the call that made it answers: no broker lies between the two, so a NATS
// outage or a crash right after cannot lose it. Only when the store refuses
// does it go to the publisher (whose consumer is this same log), to be
// stored once the store is back.
func (a auditLog) Record(ctx context.Context, e *pb.AuditEntry) {
	ctx = context.WithoutCancel(ctx)
	entry := audit.Entry{
		ID: uuid.NewString(), Time: time.Now(),
		Kind: audit.Kind(e.Kind), ActorID: e.ActorId, ActorName: e.ActorName,
		SubjectID: e.SubjectId, SubjectName: e.SubjectName, ClientAddr: e.ClientAddr, Detail: e.Detail,
	}
	if err := a.log.Append(ctx, entry); err == nil || errors.Is(err, audit.ErrInvalid) {
		return
	}
	a.pub.Record(ctx, entry)
}

// auditError maps the audit log's errors to the RPC's.
func auditError(err error) error {
	switch {
	case errors.Is(err, audit.ErrInvalid), errors.Is(err, audit.ErrBadCursor):
		return merrors.BadRequest("system.bad_request", "%v", err)
	case errors.Is(err, audit.ErrNotFound):
		return merrors.NotFound("system.not_found", "%v", err)
	}
	return unavailable("audit log", err)
}
