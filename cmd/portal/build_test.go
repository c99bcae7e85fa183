package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDefaultBuildLeavesOut checks what a plain go build ./cmd/portal links:
// no embedded etcd or NATS server (those come with -tags up), and go-micro's
// go-git replaced by third_party/nogit, so none of go-git's own dependencies.
// Each is a package initialised, and pages made resident, in every Portal
// process that never uses it (README, Measured: idle RSS).
func TestDefaultBuildLeavesOut(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps",
		"-f", "{{.ImportPath}} {{with .Module}}{{.Path}} {{with .Replace}}{{.Path}}{{end}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	refused := []string{
		"go.etcd.io/etcd/server/",                     // portal up's embedded etcd: -tags up
		"github.com/nats-io/nats-server/",             // portal up's embedded NATS: -tags up
		"github.com/go-git/go-billy/",                 // go-git's file systems
		"github.com/ProtonMail/go-crypto/",            // go-git's OpenPGP
		"github.com/go-git/go-git/v5/plumbing/object", // only in the real go-git
	}
	gogit := false
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		for _, p := range refused {
			if strings.HasPrefix(f[0], p) {
				t.Errorf("the default build links %s", f[0])
			}
		}
		if len(f) > 1 && f[1] == "github.com/go-git/go-git/v5" {
			gogit = true
			if len(f) < 3 || f[2] != "./third_party/nogit" {
				t.Errorf("%s comes from %v, want go.mod's replacement ./third_party/nogit", f[0], f[1:])
			}
		}
	}
	if !gogit {
		t.Error("go-micro's runtime no longer imports go-git: drop the replacement and third_party/nogit")
	}
}
