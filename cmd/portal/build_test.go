package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDefaultBuildLeavesOut checks what a plain go build ./cmd/portal links:
// no embedded etcd or NATS server (those come with -tags up), and the
// modules that go.mod replaces with stubs under third_party (features of
// go-micro, gin and urfave/cli that Portal never calls), so none of their
// own dependencies. Each package linked is initialised, and its pages made
// resident, in every Portal process (README, Measured: idle RSS).
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
		"github.com/russross/blackfriday/",            // go-md2man's Markdown parser
	}
	stubs := map[string]string{ // module -> the replacement go.mod names
		"github.com/go-git/go-git/v5":      "./third_party/nogit",
		"github.com/ugorji/go/codec":       "./third_party/nomsgpack",
		"github.com/cpuguy83/go-md2man/v2": "./third_party/noman",
	}
	linked := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		for _, p := range refused {
			if strings.HasPrefix(f[0], p) {
				t.Errorf("the default build links %s", f[0])
			}
		}
		if len(f) < 2 {
			continue
		}
		if want, ok := stubs[f[1]]; ok {
			linked[f[1]] = true
			if len(f) < 3 || f[2] != want {
				t.Errorf("%s comes from %v, want go.mod's replacement %s", f[0], f[1:], want)
			}
		}
	}
	for m, dir := range stubs {
		if !linked[m] {
			t.Errorf("nothing imports %s any more: drop its replacement and %s", m, dir)
		}
	}
}
