package testenv

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestSourceHash: the shared build's name changes with a source file, go.sum
// or an embedded asset, and not with a test or a document.
func TestSourceHash(t *testing.T) {
	root := t.TempDir()
	write := func(rel, body string) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	hash := func() string {
		t.Helper()
		h, err := sourceHash(root)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	write("go.mod", "module x\n")
	write("go.sum", "")
	write("cmd/x/main.go", "package main\n")
	write("web/page.html", "<p>")
	base := hash()
	for _, rel := range []string{"cmd/x/main_test.go", "README.md", "bin/test/portal-old", ".git/HEAD", "data/db"} {
		write(rel, "changed")
		if h := hash(); h != base {
			t.Errorf("writing %s changed the hash", rel)
		}
	}
	for _, rel := range []string{"cmd/x/main.go", "go.sum", "web/page.html", "internal/new.go"} {
		write(rel, "changed "+rel)
		h := hash()
		if h == base {
			t.Errorf("writing %s left the hash as it was", rel)
		}
		base = h
	}
}

// TestRemoveOtherBuilds: a new build leaves no older one behind.
func TestRemoveOtherBuilds(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"portal-aaa", "portal-bbb", "portal-ccc.tmp", ".lock"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	removeOtherBuilds(dir, filepath.Join(dir, "portal-bbb"))
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if !reflect.DeepEqual(got, []string{".lock", "portal-bbb"}) {
		t.Errorf("left %v, want [.lock portal-bbb]", got)
	}
}
