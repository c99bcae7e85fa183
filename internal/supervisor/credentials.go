package supervisor

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

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
