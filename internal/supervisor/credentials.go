package supervisor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"

	"github.com/portal-go/portal/internal/datadir"
)

// CredentialsFile is where, in the data dir, portal up keeps the logins of
// its embedded etcd and NATS (mode 0600).
const CredentialsFile = "backends.json"

// Credentials are the logins of the embedded etcd and NATS, generated on
// the first start and handed only to the children (in their environment):
// any other process on the machine can neither register a node nor read or
// publish an event.
type Credentials struct {
	// EtcdRootPassword is etcd's root user's, which only the supervisor
	// uses, to set the users up.
	EtcdRootPassword string `json:"etcd_root_password"`
	// EtcdUser may read and write /micro/ only (registry, config).
	EtcdUser     string `json:"etcd_user"`
	EtcdPassword string `json:"etcd_password"`
	// NATSUser and NATSPassword are the NATS server's one user.
	NATSUser     string `json:"nats_user"`
	NATSPassword string `json:"nats_password"`
}

// LoadOrCreateCredentials reads the credentials kept in dir, generating and
// saving them (mode 0600) on the first start.
func LoadOrCreateCredentials(dir string) (Credentials, error) {
	path := filepath.Join(dir, CredentialsFile)
	b, err := os.ReadFile(path)
	if err == nil {
		var c Credentials
		if err := json.Unmarshal(b, &c); err != nil || c.EtcdPassword == "" || c.NATSPassword == "" || c.EtcdRootPassword == "" {
			return Credentials{}, fmt.Errorf("%s: not the credentials portal up wrote (%v); remove it together with the etcd and nats dirs beside it", path, err)
		}
		return c, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return Credentials{}, err
	}
	c := Credentials{EtcdUser: "portal", NATSUser: "portal"}
	for _, p := range []*string{&c.EtcdRootPassword, &c.EtcdPassword, &c.NATSPassword} {
		if *p, err = randomSecret(); err != nil {
			return Credentials{}, err
		}
	}
	b, err = json.MarshalIndent(c, "", "  ")
	if err != nil {
		return Credentials{}, err
	}
	if err := datadir.WriteFile(path, b, 0o600); err != nil {
		return Credentials{}, fmt.Errorf("credentials: %w", err)
	}
	return c, nil
}

// randomSecret is 24 random bytes in hex.
func randomSecret() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// enableEtcdAuth turns authentication on in the embedded etcd e, once: a
// root user, and c's user whose role may read and write /micro/ only. An
// etcd whose authentication is on already (a later start) is left alone.
func enableEtcdAuth(ctx context.Context, e *embed.Etcd, c Credentials) error {
	cli := v3client.New(e.Server)
	defer cli.Close()
	st, err := cli.AuthStatus(ctx)
	if err != nil {
		return fmt.Errorf("etcd auth status: %w", err)
	}
	if st.Enabled {
		return nil
	}
	// Each step tolerates having been done by a start that stopped half
	// way.
	steps := []func() error{
		func() error { _, err := cli.UserAdd(ctx, "root", c.EtcdRootPassword); return err },
		func() error { _, err := cli.RoleAdd(ctx, "root"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.RoleAdd(ctx, "portal"); return err },
		func() error {
			_, err := cli.RoleGrantPermission(ctx, "portal", "/micro/", clientv3.GetPrefixRangeEnd("/micro/"), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := cli.UserAdd(ctx, c.EtcdUser, c.EtcdPassword); return err },
		func() error { _, err := cli.UserGrantRole(ctx, c.EtcdUser, "portal"); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	}
	for _, step := range steps {
		if err := step(); err != nil && !errors.Is(err, rpctypes.ErrUserAlreadyExist) && !errors.Is(err, rpctypes.ErrRoleAlreadyExist) {
			return fmt.Errorf("etcd auth setup: %w", err)
		}
	}
	return nil
}
