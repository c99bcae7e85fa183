package portal_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadmeSSOExample: the relying-party example of README's "Use Portal
// as your SSO" compiles and passes go vet, as a handler's body, against the
// go-oidc and x/oauth2 that go.mod pins: a reader can paste it.
func TestReadmeSSOExample(t *testing.T) {
	parallel(t)
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Use Portal as your SSO\n")
	if !ok {
		t.Fatal("README has no section Use Portal as your SSO")
	}
	_, code, ok := strings.Cut(section, "```go\n")
	if ok {
		code, _, ok = strings.Cut(code, "```")
	}
	if !ok {
		t.Fatal("the section has no Go example")
	}
	if n := strings.Count(strings.TrimSpace(code), "\n") + 1; n > 12 {
		t.Fatalf("the example has %d lines; keep it about ten", n)
	}
	src := `package main

import (
	"context"
	"net/http"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// signIn holds the README's example: the application's sign-in handler
// and its callback in one body.
func signIn(ctx context.Context, w http.ResponseWriter, r *http.Request, id, secret, state string) error {
` + code + `	return err
}

func main() { _ = signIn }
`
	// Inside the module, so that go.mod's versions are the ones used;
	// under testdata, so that no ./... pattern sees it.
	dir, err := os.MkdirTemp("testdata", "readme-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "vet", "./"+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the README's example does not compile or vet: %v\n%s\n%s", err, out, src)
	}
}
