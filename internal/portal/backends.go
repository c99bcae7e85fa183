package portal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"go-micro.dev/v4/util/cmd"

	goredis "github.com/go-redis/redis/v8"
	"github.com/nats-io/nats.go"

	"github.com/portal-go/portal/internal/etcdx"
	"github.com/portal-go/portal/internal/natsx"
	"github.com/portal-go/portal/internal/redisx"
)

// MICRO_REGISTRY=etcd makes an etcdx.Pending while the flags are parsed;
// connectEtcd makes the real registry once the settings are checked.
func init() { cmd.DefaultRegistries["etcd"] = etcdx.NewPending }

// etcdFlags are the flags of the TLS files Portal's etcd clients use;
// ETCD_USERNAME and ETCD_PASSWORD are read from the environment only.
var etcdFlags = []string{"etcd_ca_file", "etcd_cert_file", "etcd_key_file"}

// etcdSettings are the etcd settings the flags give, on addrs.
func etcdSettings(addrs string, files func(string) string) etcdx.Settings {
	return etcdx.FromEnv(splitList(addrs), files(etcdFlags[0]), files(etcdFlags[1]), files(etcdFlags[2]))
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// usesEtcdRegistry reports whether the registry is etcd still to connect.
func (s ServiceSettings) usesEtcdRegistry() bool {
	_, ok := s.Registry.(*etcdx.Pending)
	return ok
}

// configEtcd are the config center's etcd settings: the registry's, on the
// config address when one is given.
func (s ServiceSettings) configEtcd() etcdx.Settings {
	e := s.Etcd
	if s.ConfigAddress != "" {
		e.Addrs = splitList(s.ConfigAddress)
	}
	return e
}

// connectEtcd checks the etcd settings of the registry and config center,
// when they are etcd, and makes the registry. A wrong CA, client
// certificate or password fails here, with a message that names the
// setting. An etcd that does not answer is a warning (the service starts
// unregistered and on default config, and keeps trying), unless
// credentials are set: go-micro's etcd plugin can only authenticate as it
// is made.
func connectEtcd(ctx context.Context, s *ServiceSettings, log *slog.Logger) error {
	var checks []etcdx.Settings
	if s.usesEtcdRegistry() {
		checks = append(checks, s.Etcd)
	}
	if s.ConfigSource == "etcd" && (len(checks) == 0 || s.ConfigAddress != "") {
		checks = append(checks, s.configEtcd())
	}
	for _, e := range checks {
		err := etcdx.Check(ctx, e)
		switch {
		case errors.Is(err, etcdx.ErrUnreachable) && e.Username == "":
			log.Warn("etcd does not answer; starting anyway", "etcd", e.Describe(), "err", err)
		case err != nil:
			return fmt.Errorf("etcd (%s): %w", e.Describe(), err)
		default:
			log.Info("etcd", "etcd", e.Describe())
		}
	}
	if !s.usesEtcdRegistry() {
		return nil
	}
	r, err := s.Etcd.Registry()
	if err != nil {
		return err
	}
	s.Registry = r
	return nil
}

// dialRedis are the client options of the Redis at nodes (the setting
// named setting) with the CA of caFile, checked: a wrong CA, user or
// password is an error naming it; a Redis that does not answer is left to
// the caller (user's start check refuses it, web's cache treats it as
// misses).
func dialRedis(nodes []string, caFile, setting string, log *slog.Logger) (goredis.UniversalOptions, error) {
	opts, err := redisx.Dial(nodes, caFile)
	if err != nil {
		return opts, fmt.Errorf("%s: %w", setting, err)
	}
	err = redisx.Check(context.Background(), opts)
	switch {
	case errors.Is(err, redisx.ErrUnreachable):
		log.Warn("redis does not answer", "setting", setting, "err", err)
	case err != nil:
		return opts, fmt.Errorf("%s: %w", setting, err)
	}
	return opts, nil
}

// eventsNATS are the audit stream's NATS settings: the broker's TLS and
// creds, on --events_address when set, else on the broker's addresses when
// the broker is NATS, else on NATS's default address.
func (s ServiceSettings) eventsNATS() natsx.Settings {
	n := s.NATS
	switch {
	case s.EventsAddress != "":
		n.Addrs = splitList(s.EventsAddress)
	case s.BrokerName != "nats":
		n.Addrs = nil
	}
	return n
}

// connectNATS, when the broker is NATS, checks its settings (a wrong CA,
// TLS on one side only, refused or missing credentials fail here, naming
// the setting; a NATS that does not answer is a warning: the broker keeps
// trying), gives the broker its addresses and TLS, and returns the nats.go
// options of its creds or NKey file for the connection (UseNATSLink). The
// audit stream, on other addresses, is checked too.
func connectNATS(s *ServiceSettings, log *slog.Logger) ([]nats.Option, error) {
	var checks []natsx.Settings
	if s.BrokerName == "nats" {
		checks = append(checks, s.NATS)
	}
	if s.Events == "nats" && (s.EventsAddress != "" || s.BrokerName != "nats") {
		checks = append(checks, s.eventsNATS())
	}
	for _, n := range checks {
		err := natsx.Check(n)
		switch {
		case errors.Is(err, natsx.ErrUnreachable):
			log.Warn("nats does not answer; connecting in the background", "nats", n.Describe(), "err", err)
		case err != nil:
			return nil, fmt.Errorf("MICRO_BROKER_ADDRESS, PORTAL_EVENTS_ADDRESS: %w", err)
		}
	}
	if s.BrokerName != "nats" {
		return nil, nil
	}
	opts, err := s.NATS.Broker()
	if err != nil {
		return nil, err
	}
	if err := s.Broker.Init(opts...); err != nil {
		return nil, fmt.Errorf("nats broker: %w", err)
	}
	return s.NATS.Auth()
}
