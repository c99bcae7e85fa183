package tlsx

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestClient(t *testing.T) {
	c, err := Client("", "X_CA")
	if err != nil || c.RootCAs != nil || c.InsecureSkipVerify || c.MinVersion == 0 {
		t.Fatalf("no CA file: %+v, %v: want the system's CAs, verified", c, err)
	}
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{notPEM, filepath.Join(t.TempDir(), "missing.pem")} {
		if _, err := Client(file, "X_CA"); err == nil || !strings.Contains(err.Error(), "X_CA") {
			t.Errorf("%s: %v, want an error naming X_CA", file, err)
		}
	}
}
