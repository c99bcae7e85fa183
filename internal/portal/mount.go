package portal

import (
	"context"
	"errors"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"go-micro.dev/v4"
	"go-micro.dev/v4/auth"
	"go-micro.dev/v4/events"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/store"

	"github.com/portal-go/portal/internal/audit"
	pauth "github.com/portal-go/portal/internal/auth"
	"github.com/portal-go/portal/internal/config"
	"github.com/portal-go/portal/internal/platform"
	"github.com/portal-go/portal/internal/sso"
	"github.com/portal-go/portal/internal/system"
	"github.com/portal-go/portal/internal/user"
	"github.com/portal-go/portal/internal/web"
	oidcpb "github.com/portal-go/portal/proto/oidc"
	systempb "github.com/portal-go/portal/proto/system"
	userpb "github.com/portal-go/portal/proto/user"
)

// The mount functions put a service's handler, rules and health check on a
// built go-micro service; both modes (RunAll, RunService) use them.

// mountUser serves the user service on svc, its store st traced as part of
// each request, and makes the first admin. claimer (nil: none) claims
// usernames in st atomically; when it is also a user.Getter (Redis), users and
// sessions are read with one MGET. It publishes audit entries on stream.
func mountUser(svc *platform.Service, st store.Store, claimer user.Claimer, minter, verifier auth.Auth, cfg *config.Center, adminPassword, issuer string, stream events.Stream, log *slog.Logger) error {
	repo := user.NewRepo(platform.TraceStore(st, svc.TracerProvider()))
	if claimer != nil {
		repo = repo.WithClaimer(claimer)
	}
	if g, ok := claimer.(user.Getter); ok {
		repo = repo.WithGetter(g)
	}
	h := user.NewHandler(repo, minter, cfg, user.Events{
		Revoked: micro.NewEvent(user.TopicSessionRevoked, svc.Client()),
		Changed: micro.NewEvent(user.TopicUserChanged, svc.Client()),
	}, log)
	pub := audit.NewPublisher(stream, log.With("service", "user"))
	h.WithAudit(pub)
	// h is a pauth.SessionReader: the handler reuses what the session check
	// read for the same call.
	svc.SetAuth(pauth.HandlerWrapper(verifier, h))
	if err := userpb.RegisterUserHandler(svc.Server(), h); err != nil {
		return err
	}
	if err := mountSSO(svc, st, claimer, minter, h, issuer, pub, log); err != nil {
		return err
	}
	// The service starts only with a store that answers and a key to sign
	// tokens with, and then makes sure there is an admin.
	svc.Require(
		platform.Check{Name: "store", Fn: userHealth(h)},
		platform.Check{Name: "keys", Fn: canMint(minter)},
	)
	svc.OnStart(func(ctx context.Context) error { return ensureAdmin(ctx, h, adminPassword, log) })
	svc.AddCheck(platform.Check{Name: "config", Fn: cfg.Check})
	svc.SetHealth(userHealth(h))
	return nil
}

// mountSSO serves the OpenID provider (internal/sso) beside the user
// handler h, its records in st, sealed with a key derived from minter's.
func mountSSO(svc *platform.Service, st store.Store, claimer user.Claimer, minter auth.Auth, h *user.Handler, issuer string, pub *audit.Publisher, log *slog.Logger) error {
	d, ok := minter.(interface{ DeriveKey(string) []byte })
	if !ok || d.DeriveKey("oidc provider v1") == nil {
		return errors.New("no private key: the user service signs tokens")
	}
	var c sso.Claimer
	if claimer != nil {
		c = claimer
	}
	p, err := sso.New(st, c, d.DeriveKey("oidc provider v1"), h.SSO(), sso.Options{Issuer: issuer, Log: log, Audit: pub, Metrics: registerer(svc)})
	if err != nil {
		return err
	}
	h.OnSessionEnded(func(userID, sid string) { p.SessionEnded(userID, sid, nil) })
	return oidcpb.RegisterOIDCHandler(svc.Server(), sso.NewHandler(p))
}

// registerer is svc's metrics registry, or nil.
func registerer(svc *platform.Service) prometheus.Registerer {
	if m := svc.Metrics(); m != nil {
		return m.Registry
	}
	return nil
}

// canMint checks that a holds the private key that signs tokens.
func canMint(a auth.Auth) func(context.Context) error {
	return func(context.Context) error {
		if m, ok := a.(interface{ CanMint() bool }); !ok || !m.CanMint() {
			return errors.New("no private key: the user service signs tokens")
		}
		return nil
	}
}

// mountSystem serves the system service on svc, reporting reg. While it
// runs, it stores the audit entries stream carries in st.
func mountSystem(svc *platform.Service, reg registry.Registry, verifier auth.Auth, cfg *config.Center, st store.Store, stream events.Stream, log *slog.Logger) error {
	log = log.With("service", "system")
	auditLog := audit.NewLog(st, audit.LogOptions{})
	svc.Background(audit.NewConsumer(stream, auditLog, log).Run)
	svc.Require(platform.Check{Name: "store", Fn: func(context.Context) error { return auditLog.Ping() }})
	h := system.NewHandler(system.Options{
		Registry: reg, Users: userpb.NewUserService("user", svc.Client()), Config: cfg,
		Audit:   system.AuditOn(auditLog, audit.NewPublisher(stream, log)),
		Runtime: system.SupervisorRuntime(svc.Client()),
	})
	svc.SetAuth(pauth.HandlerWrapper(verifier, h))
	if err := systempb.RegisterSystemHandler(svc.Server(), h); err != nil {
		return err
	}
	svc.AddCheck(platform.Check{Name: "config", Fn: cfg.Check})
	svc.SetHealth(systemHealth(h))
	return nil
}

// mountWeb builds the gateway on svc's client and tracer and subscribes it
// to session.revoked. o gives everything but the service clients.
func mountWeb(svc *platform.Service, o web.Options) (*web.Gateway, error) {
	o.Users = userpb.NewUserService("user", svc.Client())
	o.System = systempb.NewSystemService("system", svc.Client())
	o.OIDC = oidcpb.NewOIDCService("user", svc.Client())
	o.Tracer = svc.TracerProvider()
	svc.AddCheck(platform.Check{Name: "config", Fn: o.Config.Check})
	gw := web.New(o)
	if err := micro.RegisterSubscriber(user.TopicSessionRevoked, svc.Server(), gw.OnSessionRevoked); err != nil {
		return nil, err
	}
	if err := micro.RegisterSubscriber(user.TopicUserChanged, svc.Server(), gw.OnUserChanged); err != nil {
		return nil, err
	}
	return gw, nil
}
