package portal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go-micro.dev/v4"
	"go-micro.dev/v4/auth"
	"go-micro.dev/v4/events"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"
	"go-micro.dev/v4/store"

	"github.com/portal-go/portal/internal/audit"
	pauth "github.com/portal-go/portal/internal/auth"
	"github.com/portal-go/portal/internal/config"
	"github.com/portal-go/portal/internal/datadir"
	"github.com/portal-go/portal/internal/endpoint"
	"github.com/portal-go/portal/internal/kv"
	"github.com/portal-go/portal/internal/mail"
	"github.com/portal-go/portal/internal/outbox"
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
// each request, and makes the first admin. k (nil: none) makes writes and
// index updates in st atomic across processes; on Redis, users and sessions
// are also read with one MGET. It publishes audit entries on stream, and
// serves the OpenID provider as issuer. Its mail goes through an outbox in
// st, sent by a background job via sender. With k, the events it publishes
// and the audit entries (unless stream is durable by itself) are kept in an
// outbox in k until flush (nil: publishing is delivering) confirms that the
// broker has them, relayed in the background.
func mountUser(svc *platform.Service, st store.Store, k kv.Store, minter, verifier auth.Auth, cfg *config.Center, adminPassword, issuer string, stream events.Stream, sender mail.Sender, flush func(context.Context) error, log *slog.Logger) (*user.Handler, error) {
	repo := user.NewRepo(platform.TraceStore(st, svc.TracerProvider()))
	if k != nil {
		repo = repo.WithKV(k)
	}
	if g, ok := k.(*kv.Redis); ok {
		repo = repo.WithGetter(g)
	}
	pub := audit.NewPublisher(stream, log.With("service", "user"))
	h := user.NewHandler(repo, minter, cfg, user.Events{
		Revoked: micro.NewEvent(user.TopicSessionRevoked, svc.Client()),
		Changed: micro.NewEvent(user.TopicUserChanged, svc.Client()),
		Roles:   micro.NewEvent(user.TopicRoleChanged, svc.Client()),
	}, log).WithAudit(pub)
	if k != nil {
		sendEvent := user.Send(svc.Client(), flush)
		ob := outbox.New(k, func(ctx context.Context, m outbox.Message) error {
			if m.Topic == audit.Topic {
				return pub.Send(ctx, m)
			}
			return sendEvent(ctx, m)
		}, flush, log)
		h.WithOutbox(ob)
		if _, durable := stream.(*audit.DurableStream); !durable {
			pub.WithOutbox(ob)
		}
		svc.Background(ob.Run)
	}
	if k == nil {
		k = kv.NewLocal(st)
	}
	mailbox := mail.NewOutbox(st, k, sender, log.With("service", "user"), mail.OutboxOptions{})
	h.WithMail(mailbox)
	svc.Background(mailbox.Run)
	// h.Check hands the handler what it read for the same call. Inside it,
	// a login's body says of the client only what the caller proved.
	authz := pauth.HandlerWrapper(verifier, user.Endpoints, h)
	svc.SetAuth(func(next server.HandlerFunc) server.HandlerFunc { return authz(user.ProvenClient(next)) })
	if err := userpb.RegisterUserHandler(svc.Server(), h); err != nil {
		return nil, err
	}
	if err := userpb.RegisterAccountsHandler(svc.Server(), user.NewAccounts(h)); err != nil {
		return nil, err
	}
	if err := userpb.RegisterPasskeysHandler(svc.Server(), user.NewPasskeys(h)); err != nil {
		return nil, err
	}
	if err := mountSSO(svc, st, k, minter, h, issuer, pub, log); err != nil {
		return nil, err
	}
	// Every instance holds the roles in memory: read before it serves,
	// again on each role.updated event, and every user.RolesRefresh.
	if err := micro.RegisterSubscriber(user.TopicRoleChanged, svc.Server(), h.OnRoleChanged); err != nil {
		return nil, err
	}
	svc.Background(h.RefreshRoles)
	// The service starts only with a store that answers and a key to sign
	// tokens with, and then makes sure there is an admin.
	svc.Require(
		platform.Check{Name: "store", Fn: userHealth(h)},
		platform.Check{Name: "keys", Fn: canMint(minter)},
	)
	svc.OnStart(h.LoadRoles)
	svc.OnStart(func(ctx context.Context) error {
		if n, err := repo.Reindex(ctx); err != nil {
			return fmt.Errorf("indexing the user store: %w", err)
		} else if n > 0 {
			log.Info("indexed the user store's records (once, for a store written by an earlier version)", "records", n)
		}
		return ensureAdmin(ctx, h, adminPassword, log)
	})
	svc.AddCheck(platform.Check{Name: "config", Fn: cfg.Check})
	svc.SetHealth(userHealth(h))
	return h, nil
}

// mountSSO serves the OpenID provider (internal/sso) beside the user
// handler h, its records in st, sealed with a key derived from minter's.
func mountSSO(svc *platform.Service, st store.Store, k kv.Store, minter auth.Auth, h *user.Handler, issuer string, pub *audit.Publisher, log *slog.Logger) error {
	d, ok := minter.(interface{ DeriveKey(string) []byte })
	if !ok || d.DeriveKey("oidc provider v1") == nil {
		return errors.New("no private key: the user service signs tokens")
	}
	if k == nil {
		k = kv.NewLocal(st)
	}
	p, err := sso.New(st, k, d.DeriveKey("oidc provider v1"), h.SSO(), sso.Options{Issuer: issuer, Log: log, Audit: pub, Metrics: registerer(svc)})
	if err != nil {
		return err
	}
	h.OnSessionEnded(p.SessionEnded)
	svc.Background(p.Run)
	return oidcpb.RegisterOIDCHandler(svc.Server(), sso.NewHandler(p))
}

// registerer is svc's metrics registry, or nil.
func registerer(svc *platform.Service) prometheus.Registerer {
	if m := svc.Metrics(); m != nil {
		return m.Registry
	}
	return nil
}

// dataDirCheck is the readiness check of a data dir the service writes: a
// full or read-only disk fails every write.
func dataDirCheck(dir string) platform.Check {
	return platform.Check{Name: "data_dir", Fn: func(context.Context) error { return datadir.CheckWritable(dir) }}
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
// runs, it stores the audit entries stream carries in st (through k, when
// not nil).
func mountSystem(svc *platform.Service, reg registry.Registry, verifier auth.Auth, cfg *config.Center, st store.Store, k kv.Store, stream events.Stream, log *slog.Logger) error {
	log = log.With("service", "system")
	o := audit.LogOptions{KV: k}
	if m := svc.Metrics(); m != nil {
		o.OnDrop = func(reason string, n int) { m.AuditDropped.WithLabelValues(reason).Add(float64(n)) }
	}
	auditLog := audit.NewLog(st, o)
	svc.OnStart(func(ctx context.Context) error {
		if n, err := auditLog.Migrate(ctx); err != nil {
			return fmt.Errorf("moving the audit log to its indexed layout: %w", err)
		} else if n > 0 {
			log.Info("moved the audit log's entries to the indexed layout (once, for a store written by an earlier version)", "entries", n)
		}
		return nil
	})
	svc.Background(audit.NewConsumer(stream, auditLog, log).Run)
	svc.Background(func(ctx context.Context) { trimAudit(ctx, auditLog, log) })
	svc.Require(platform.Check{Name: "store", Fn: func(context.Context) error { return auditLog.Ping() }})
	users := userpb.NewUserService("user", svc.Client())
	h := system.NewHandler(system.Options{
		Registry: reg, Users: users, Config: cfg, History: system.NewHistory(st, k),
		Audit:   system.AuditOn(auditLog, audit.NewPublisher(stream, log)),
		Runtime: system.SupervisorRuntime(svc.Client()),
	})
	// The config's history hears the changes made at the source (the file,
	// etcd) as well as those made through the service, and at start
	// records what changed while no system service watched.
	cfg.OnChange(h.ConfigChanged)
	svc.OnStart(func(ctx context.Context) error {
		if err := h.SyncConfig(ctx); err != nil {
			log.Warn("config history: the settings in force could not be recorded", "err", err)
		}
		return nil
	})
	svc.SetAuth(pauth.HandlerWrapper(verifier, system.Endpoints, pauth.UserChecker(users)))
	if err := systempb.RegisterSystemHandler(svc.Server(), h); err != nil {
		return err
	}
	svc.AddCheck(platform.Check{Name: "config", Fn: cfg.Check})
	// No registration check: what System.Health asks is the registry, and a
	// node that cannot reach the registry cannot leave it either. The
	// deregistration would land when the registry answers again, and take
	// a healthy node out (TestSystemRegistrationIgnoresTheRegistry).
	return nil
}

// mountWeb builds the gateway on svc's client and tracer and subscribes it
// to session.revoked. o gives everything but the service clients.
func mountWeb(svc *platform.Service, o web.Options) (*web.Gateway, error) {
	o.Users = userpb.NewUserService("user", svc.Client())
	o.Accounts = userpb.NewAccountsService("user", svc.Client())
	o.Passkeys = userpb.NewPasskeysService("user", svc.Client())
	o.System = systempb.NewSystemService("system", svc.Client())
	o.OIDC = oidcpb.NewOIDCService("user", svc.Client())
	o.Client, o.Endpoints = svc.Client(), []*endpoint.Table{user.Endpoints, system.Endpoints}
	o.Tracer = svc.TracerProvider()
	o.Readiness = svc.Readiness
	svc.AddCheck(platform.Check{Name: "config", Fn: o.Config.Check})
	gw := web.New(o)
	svc.AddCheck(gw.Checks()...)
	if l, ok := o.Revocations.(*platform.NATSLink); ok {
		// Subscribed now (AfterStart): verdicts cached before are not
		// trusted.
		svc.Background(func(context.Context) { l.Confirm() })
	}
	if err := micro.RegisterSubscriber(user.TopicSessionRevoked, svc.Server(), gw.OnSessionRevoked); err != nil {
		return nil, err
	}
	if err := micro.RegisterSubscriber(user.TopicUserChanged, svc.Server(), gw.OnUserChanged); err != nil {
		return nil, err
	}
	if err := micro.RegisterSubscriber(user.TopicRoleChanged, svc.Server(), gw.OnRoleChanged); err != nil {
		return nil, err
	}
	return gw, nil
}

// mailSender is where the user service's mail goes: the SMTP server the
// PORTAL_SMTP_* settings name, else files in <dataDir>/mail and the log.
func mailSender(dataDir string, getenv func(string) string, log *slog.Logger) (mail.Sender, error) {
	c, ok, err := mail.SMTPFromEnv(getenv)
	var s interface {
		mail.Sender
		String() string
	}
	switch {
	case err != nil:
		return nil, err
	case ok:
		s, err = mail.NewSMTP(c)
	default:
		s, err = mail.NewDir(filepath.Join(dataDir, "mail"), "portal@localhost.localdomain", log)
	}
	if err != nil {
		return nil, err
	}
	log.Info("mail", "sender", s.String())
	return s, nil
}

// trimAudit keeps the audit log within its bounds (age: appends alone would
// not drop old entries while nothing is appended) every minute until ctx
// ends.
func trimAudit(ctx context.Context, l *audit.Log, log *slog.Logger) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		if _, err := l.Trim(ctx); err != nil && ctx.Err() == nil {
			log.Warn("audit: trim failed; trying again in a minute", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
