package sso

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portal-go/portal/internal/audit"
)

// metrics count the provider's work per client: tokens issued and
// refreshed, grants and tokens ended, refresh-token reuse, back-channel
// logout deliveries. The client label is bounded by the registered clients.
type metrics struct {
	events *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{events: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portal_oidc_events_total",
		Help: "OpenID provider events per client: issued, refreshed, revoked, reuse, backchannel_ok, backchannel_failed (an attempt refused), backchannel_given_up.",
	}, []string{"client", "event"})}
	if reg != nil {
		if err := reg.Register(m.events); err != nil {
			if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
				m.events = are.ExistingCollector.(*prometheus.CounterVec)
			}
		}
	}
	return m
}

func (m *metrics) inc(client, event string) { m.events.WithLabelValues(client, event).Inc() }

func (m *metrics) backchannel(client string, ok bool) {
	if ok {
		m.inc(client, "backchannel_ok")
	} else {
		m.inc(client, "backchannel_failed")
	}
}

// audit records what happened to a user's grant with a client.
func (p *Provider) audit(ctx context.Context, kind audit.Kind, userID, clientID, detail string) {
	if p.opts.Audit == nil {
		return
	}
	name := clientID
	if c, err := p.storage.Client(ctx, clientID); err == nil {
		name = c.Name
	}
	p.opts.Audit.Record(context.WithoutCancel(ctx), audit.Entry{
		Kind: kind, ActorID: userID, SubjectID: clientID, SubjectName: name, Detail: detail,
	})
}
