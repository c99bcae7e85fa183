package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portal-go/portal/internal/testenv/poll"
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

// TestRemoveOtherBuilds: a run leaves no build of older sources behind,
// but for one used lately (by a run that may still be going).
func TestRemoveOtherBuilds(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-time.Hour)
	for _, n := range []string{"portal-aaa", "portal-bbb", "portal-ccc.tmp", "portal-ddd", ".lock"} {
		p := filepath.Join(dir, n)
		if err := os.WriteFile(p, nil, 0o755); err != nil {
			t.Fatal(err)
		}
		if n != "portal-ddd" {
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	removeOtherBuilds(dir, "portal", filepath.Join(dir, "portal-bbb"), time.Now().Add(-staleBuild))
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if !reflect.DeepEqual(got, []string{".lock", "portal-bbb", "portal-ddd"}) {
		t.Errorf("left %v, want [.lock portal-bbb portal-ddd]: the one in use, one used lately", got)
	}
}

// TestSharedBuildsTakeOneLock: a shared build waits while any other holds
// bin/test's lock, whatever its name, so that two builds never compile the
// same packages at once. The kernel lists a process blocked in flock in
// /proc/locks ("-> FLOCK" on the file's inode): that, not a pause, tells
// that the build is waiting on the lock.
func TestSharedBuildsTakeOneLock(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, buildDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Present already, so the build only reuses it once it has the lock.
	if err := os.WriteFile(filepath.Join(dir, "other-1"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(dir, buildLock)
	unlock, err := lockFile(lock) // as a portal build in progress would
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	fi, err := os.Stat(lock)
	if err != nil {
		t.Fatal(err)
	}
	inode := fmt.Sprintf(":%d ", fi.Sys().(*syscall.Stat_t).Ino)
	done := make(chan error, 1)
	go func() {
		_, err := sharedBuild(root, "other", "1", "", "./other")
		done <- err
	}()
	poll.Wait(t, 10*time.Second, "the build to wait on the lock", func() bool {
		select {
		case err := <-done:
			t.Fatalf("sharedBuild returned (%v) while another build held the lock", err)
		default:
		}
		locks, err := os.ReadFile("/proc/locks")
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(locks), "\n") {
			if strings.Contains(l, "-> FLOCK") && strings.Contains(l, inode) {
				return true
			}
		}
		return false
	})
	unlock()
	if err := poll.Receive(t, 10*time.Second, "the build once the lock is free", done); err != nil {
		t.Fatal(err)
	}
}
