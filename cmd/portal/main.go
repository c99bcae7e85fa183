// Command portal runs Portal. With no arguments (or "all") it runs web, user
// and system in one process on the embedded default: nothing to install.
// "portal up" runs them as separate processes under a supervisor; "portal
// web|user|system" runs one.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	pauth "github.com/portal-go/portal/internal/auth"
	"github.com/portal-go/portal/internal/config"
	"github.com/portal-go/portal/internal/platform"
	"github.com/portal-go/portal/internal/portal"
	"github.com/portal-go/portal/internal/supervisor"
	"github.com/portal-go/portal/internal/svcid"
)

// flags are the embedded mode's settings, accepted before or after "all".
var flags = append([]cli.Flag{
	&cli.StringFlag{Name: "http_address", Value: ":8080", EnvVars: []string{"PORTAL_HTTP_ADDRESS"}, Usage: "where the web gateway listens"},
	&cli.StringFlag{Name: "data_dir", Value: "./data", EnvVars: []string{"PORTAL_DATA_DIR"}, Usage: "where the embedded store and the auth keys live"},
	&cli.StringFlag{Name: "issuer", EnvVars: []string{"PORTAL_ISSUER"}, Usage: "the OpenID provider's public https URL (default: derived from the listen address, and logged)"},
	&cli.StringFlag{Name: "config", EnvVars: []string{"PORTAL_CONFIG"}, Usage: "yaml config file, watched; built-in defaults when missing (default: ./portal.yaml when present, else portal.yaml in the data dir)"},
	&cli.StringFlag{Name: "auth_public_key", EnvVars: []string{"MICRO_AUTH_PUBLIC_KEY"}, Usage: "RSA public key that verifies tokens, base64 of PEM (default: generated into the data dir)"},
	&cli.StringFlag{Name: "metrics_address", EnvVars: []string{"PORTAL_METRICS_ADDRESS"}, Usage: "serve GET /metrics, /healthz and /readyz (with each check's error) on this address, unauthenticated (default: off)"},
	&cli.StringFlag{Name: "auth_private_key", EnvVars: []string{"MICRO_AUTH_PRIVATE_KEY"}, Usage: "RSA private key that signs tokens, base64 of PEM (default: generated into the data dir)"},
	&cli.StringFlag{Name: "trace_endpoint", EnvVars: []string{"PORTAL_TRACE_ENDPOINT"}, Usage: "export spans over OTLP/HTTP to this receiver's base URL, e.g. http://127.0.0.1:4318 (default: OTEL_EXPORTER_OTLP_ENDPOINT, else no export)"},
}, portal.EdgeFlags...)

// upFlags are portal up's settings; everything else reaches the services
// through the environment they inherit (MICRO_*, PORTAL_*).
var upFlags = []cli.Flag{
	&cli.StringFlag{Name: "http_address", Value: ":8080", EnvVars: []string{"PORTAL_HTTP_ADDRESS"}, Usage: "where the web gateway listens"},
	&cli.StringFlag{Name: "data_dir", Value: "./data", EnvVars: []string{"PORTAL_DATA_DIR"}, Usage: "auth keys, stores, and the embedded etcd's and NATS's data"},
	&cli.StringFlag{Name: "config", EnvVars: []string{"PORTAL_CONFIG"}, Usage: "yaml config file every service watches; built-in defaults when missing (default: ./portal.yaml when present, else portal.yaml in the data dir)"},
	&cli.StringFlag{Name: "etcd_address", Value: "127.0.0.1:0", EnvVars: []string{"PORTAL_ETCD_ADDRESS"}, Usage: "where the embedded etcd serves clients, loopback only (port 0: a free one; unused with MICRO_REGISTRY_ADDRESS)"},
	&cli.StringFlag{Name: "nats_address", Value: "127.0.0.1:0", EnvVars: []string{"PORTAL_NATS_ADDRESS"}, Usage: "where the embedded NATS serves clients, loopback only (port 0: a free one; unused with MICRO_BROKER_ADDRESS)"},
}

func main() {
	app := &cli.App{
		Name:    "portal",
		Usage:   "a user and administration portal on go-micro",
		Version: platform.Version,
		Flags:   flags,
		Action:  runAll,
		Commands: []*cli.Command{
			{Name: "all", Usage: "run web, user and system in one process (the default)", Flags: flags, Action: runAll},
			{
				Name: "admin", Usage: "recover an account from the command line",
				Subcommands: []*cli.Command{{
					Name:      "reset-password",
					Usage:     "give an account a temporary password (changed at its next sign-in), in the store the user service would use: the file store in --data_dir (through the running Portal's admin socket, or directly when stopped), or MICRO_STORE=redis (running or not)",
					ArgsUsage: "<username> [-- portal user flags, e.g. --store redis --store_address ...]",
					Flags:     []cli.Flag{&cli.StringFlag{Name: "data_dir", Value: "./data", EnvVars: []string{"PORTAL_DATA_DIR"}, Usage: "the data dir of the embedded store"}},
					Action: func(c *cli.Context) error {
						if c.NArg() < 1 {
							return fmt.Errorf("name the account: portal admin reset-password <username>")
						}
						log := slog.New(slog.NewTextHandler(io.Discard, nil))
						args := append([]string{"--data_dir", c.String("data_dir")}, c.Args().Tail()...)
						return portal.ResetPassword(c.Context, args, c.Args().First(), os.Stdout, log)
					},
				}},
			},
			{Name: "up", Usage: "run web, user and system as separate processes under a supervisor (go-micro runtime), with an embedded etcd and NATS", Flags: upFlags, Action: runUp},
			serviceCommand("web", "run the HTTP gateway alone"),
			serviceCommand("user", "run the accounts service alone"),
			serviceCommand("system", "run the admin service alone"),
			{
				Name:  "certs",
				Usage: "make a CA and a certificate per service (" + strings.Join(svcid.Services, ", ") + ") for mutual TLS by service name, in --dir (docs/tls.md)",
				Flags: []cli.Flag{&cli.StringFlag{Name: "dir", Required: true, Usage: "directory for ca.crt, ca.key and <service>.crt, <service>.key (keys mode 0600; existing files are never overwritten)"}},
				Action: func(c *cli.Context) error {
					if c.Args().Present() {
						return fmt.Errorf("unknown argument %q (try: portal certs --help)", c.Args().First())
					}
					if err := svcid.WriteCerts(c.String("dir"), svcid.Services, time.Now()); err != nil {
						return err
					}
					fmt.Printf("wrote ca.crt and a certificate per service (%s) to %s; keep ca.key offline\n", strings.Join(svcid.Services, ", "), c.String("dir"))
					return nil
				},
			},
		},
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "portal:", err)
		os.Exit(1)
	}
}

// serviceCommand runs one service; its flags (go-micro's MICRO_* and
// Portal's) are parsed by go-micro's cmd: `portal user --help` lists them.
func serviceCommand(name, usage string) *cli.Command {
	return &cli.Command{
		Name: name, Usage: usage + " (plugins from MICRO_* flags and environment)",
		SkipFlagParsing: true,
		Action: func(c *cli.Context) error {
			log := slog.New(slog.NewTextHandler(os.Stderr, nil))
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			// Under portal up: stop when the supervisor is gone.
			ctx = supervisor.WithSupervisor(ctx, log.With("service", name))
			go platform.ReturnMemoryWhenIdle(ctx, idleMemoryAfter, idleMemoryEvery)
			return portal.RunService(ctx, name, c.Args().Slice(), log)
		},
	}
}

func runUp(c *cli.Context) error {
	if c.Args().Present() {
		return fmt.Errorf("unknown argument %q (try: portal up --help)", c.Args().First())
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// A second signal while the services drain ends the supervisor at
		// once (they stop by themselves when it is gone).
		<-ctx.Done()
		stop()
	}()
	return supervisor.Run(ctx, supervisor.Options{
		DataDir:     c.String("data_dir"),
		HTTPAddress: c.String("http_address"),
		ConfigFile:  config.FileIn(c.String("config"), c.String("data_dir")),
		EtcdAddress: c.String("etcd_address"),
		NATSAddress: c.String("nats_address"),
		Log:         log,
	})
}

// embeddedGCPercent is the embedded mode's GOGC unless the environment sets
// one. Password hashes come and go 19 MiB at a time, and at Go's default of
// 100 the heap grows to twice what is live at a collection, hashes in flight
// included: after a minute of API calls and logins the process held 117-129
// MiB. At 50 it holds about 100 MiB, for about a tenth less throughput
// (BENCHMARKS.md).
const embeddedGCPercent = 50

// embeddedMemoryLimit is the embedded mode's soft memory limit
// (debug.SetMemoryLimit) unless GOMEMLIMIT is set: near it the collector runs
// sooner and gives freed pages back to the system at once, so what a burst
// of password hashes (19 MiB each) took is not kept resident afterwards. It
// is soft: the live heap may exceed it, at the cost of more collections.
// Measured (go run ./bench -rows 4): RSS after a minute of load 125.8 ->
// 111.7 MiB, same throughput; at 64 MiB logins fell by a third.
const embeddedMemoryLimit = 80 << 20

// idleMemoryAfter and idleMemoryEvery: a Portal process that has served
// no request or call for idleMemoryAfter gives its free heap memory back to
// the system, and again every idleMemoryEvery while it stays idle
// (platform.ReturnMemoryWhenIdle). Measured idle (scripts/idle-rss.sh),
// the embedded mode otherwise grows by about 0.1 MiB a minute.
const (
	idleMemoryAfter = 30 * time.Second
	idleMemoryEvery = 2 * time.Minute
)

func runAll(c *cli.Context) error {
	if c.Args().Present() {
		return fmt.Errorf("unknown command %q (try: portal help)", c.Args().First())
	}
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(embeddedGCPercent)
	}
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		debug.SetMemoryLimit(embeddedMemoryLimit)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go platform.ReturnMemoryWhenIdle(ctx, idleMemoryAfter, idleMemoryEvery)
	var keys *pauth.Keys
	pub, priv := c.String("auth_public_key"), c.String("auth_private_key")
	if pub != "" || priv != "" {
		keys = &pauth.Keys{Public: pub, Private: priv}
	}
	edge, err := portal.EdgeFromCLI(c)
	if err != nil {
		return err
	}
	return portal.RunAll(ctx, portal.Options{
		HTTPAddress:    c.String("http_address"),
		Issuer:         c.String("issuer"),
		DataDir:        c.String("data_dir"),
		ConfigFile:     config.FileIn(c.String("config"), c.String("data_dir")),
		AdminPassword:  os.Getenv("PORTAL_ADMIN_PASSWORD"),
		Keys:           keys,
		Log:            log,
		Edge:           edge,
		MetricsAddress: c.String("metrics_address"),
		TraceEndpoint:  c.String("trace_endpoint"),
		// What starting took (parsing templates and config, loading keys,
		// building the API document) is garbage once Portal serves: give it
		// back now rather than at the runtime's pace, so that an idle Portal
		// is small (README, Measured).
		Ready: func(string) { debug.FreeOSMemory() },
	})
}
