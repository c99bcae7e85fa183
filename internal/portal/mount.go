package portal

import (
	"log/slog"

	"go-micro.dev/v4"
	"go-micro.dev/v4/auth"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"

	pauth "github.com/portal-go/portal/internal/auth"
	"github.com/portal-go/portal/internal/config"
	"github.com/portal-go/portal/internal/platform"
	"github.com/portal-go/portal/internal/system"
	"github.com/portal-go/portal/internal/user"
	"github.com/portal-go/portal/internal/web"
	systempb "github.com/portal-go/portal/proto/system"
	userpb "github.com/portal-go/portal/proto/user"
)

// The mount functions put a service's handler, rules and health check on a
// built go-micro service; both modes (RunAll, RunService) use them.

// mountUser serves the user service on svc and makes the first admin.
func mountUser(svc *platform.Service, repo *user.Repo, minter, verifier auth.Auth, cfg *config.Center, adminPassword string, log *slog.Logger) error {
	h := user.NewHandler(repo, minter, cfg, micro.NewEvent(user.TopicSessionRevoked, svc.Client()), log)
	// KeepChecked outside the auth wrapper: the handler reuses what the
	// session check read.
	if err := svc.Server().Init(server.WrapHandler(h.KeepChecked), server.WrapHandler(pauth.HandlerWrapper(verifier, h))); err != nil {
		return err
	}
	if err := userpb.RegisterUserHandler(svc.Server(), h); err != nil {
		return err
	}
	if err := ensureAdmin(h, adminPassword, log); err != nil {
		return err
	}
	svc.SetHealth(userHealth(h))
	return nil
}

// mountSystem serves the system service on svc, reporting reg.
func mountSystem(svc *platform.Service, reg registry.Registry, verifier auth.Auth) error {
	h := system.NewHandler(reg, userpb.NewUserService("user", svc.Client()))
	if err := svc.Server().Init(server.WrapHandler(pauth.HandlerWrapper(verifier, h))); err != nil {
		return err
	}
	if err := systempb.RegisterSystemHandler(svc.Server(), h); err != nil {
		return err
	}
	svc.SetHealth(systemHealth(h))
	return nil
}

// mountWeb builds the gateway on svc's client and subscribes it to
// session.revoked. o gives everything but the service clients.
func mountWeb(svc *platform.Service, o web.Options) (*web.Gateway, error) {
	o.Users = userpb.NewUserService("user", svc.Client())
	o.System = systempb.NewSystemService("system", svc.Client())
	gw := web.New(o)
	if err := micro.RegisterSubscriber(user.TopicSessionRevoked, svc.Server(), gw.OnSessionRevoked); err != nil {
		return nil, err
	}
	return gw, nil
}
