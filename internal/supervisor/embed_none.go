//go:build !up

package supervisor

// The default build has no embedded etcd or NATS: they are 136 of the
// command's 870 packages and 20 of its 73 MB, and they cost every process,
// the embedded mode's too, their package initialisation and resident pages.
// `go build -tags up` (make build) adds them for portal up; without them
// portal up needs MICRO_REGISTRY_ADDRESS and MICRO_BROKER_ADDRESS.

import (
	"errors"
	"io"
	"log/slog"
)

// errNoEmbed is why portal up cannot start a server of its own.
var errNoEmbed = errors.New("this portal was built without -tags up, so without portal up's embedded etcd and NATS: " +
	"build it with `make build` (go build -tags up ./cmd/portal), or set MICRO_REGISTRY_ADDRESS and MICRO_BROKER_ADDRESS")

type etcdServer struct{ Addr string }

func (*etcdServer) Close() {}

func startEtcd(string, string, io.Writer, Credentials) (*etcdServer, error) { return nil, errNoEmbed }

type natsServer struct{}

func (*natsServer) Shutdown()         {}
func (*natsServer) WaitForShutdown()  {}
func (*natsServer) ClientURL() string { return "" }

func startNATS(string, string, *slog.Logger, Credentials) (*natsServer, error) {
	return nil, errNoEmbed
}
