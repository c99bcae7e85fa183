package testenv

// One portal binary for every test binary of a `go test ./...` run: the
// build is named by a hash of what goes into it, kept in the module's
// bin/test/, built by whichever package gets there first (the others wait on
// a file lock and reuse it) and replaced, never accumulated, when a source
// changes.

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BuildTags are the tags of the shared build: "up" adds portal up's embedded
// etcd and NATS (internal/supervisor/embed.go), which TestUp runs.
const BuildTags = "up"

const (
	// buildDir is where the shared build lives, under the module root.
	buildDir = "bin/test"
	// buildLock is the file lock every shared build takes, in buildDir.
	buildLock = ".lock"
	// staleBuild is how long a build of other sources is kept after its
	// last use: a run still going when the sources changed may start it
	// again.
	staleBuild = 30 * time.Minute
)

// shared is one program every test binary of a run uses: built once per
// test binary's life (once), once per run across them (a file lock in
// bin/test), and reused while its name stays the same.
type shared struct {
	once sync.Once
	bin  string
	err  error
}

// get returns the program's path, building it with build the first time;
// a failed build fails t.
func (s *shared) get(t testing.TB, what string, build func(root string) (string, error)) string {
	t.Helper()
	s.once.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			s.err = err
			return
		}
		s.bin, s.err = build(root)
	})
	if s.err != nil {
		t.Fatalf("build %s: %v", what, s.err)
	}
	return s.bin
}

var portalBuild, natsBuild shared

// BuildPortal returns the path of a portal binary (go build -tags up, no
// -race) built from the module's current sources: bin/test/portal-<hash>,
// where hash covers every non-test source file, go.mod, go.sum and the Go
// version. The first test binary to need a given hash builds it (under a
// file lock, so packages tested in parallel build it once); the others
// reuse it. A build of another hash in bin/test is removed by a later run
// once unused for 30 minutes (a run still going may start it again), so
// only the current build and recently used ones are kept, in the module's
// bin/ (make clean), never in /tmp.
func BuildPortal(t testing.TB) string {
	t.Helper()
	return portalBuild.get(t, "portal", func(root string) (string, error) {
		sum, err := sourceHash(root)
		if err != nil {
			return "", err
		}
		return sharedBuild(root, "portal", sum, BuildTags, "./cmd/portal")
	})
}

// natsModule is the NATS server the tests run: the module go.mod pins for
// portal up's embedded NATS, built as a program. Debian's nats-server
// (2.9.10) crashed in a new-machine run (a nil pointer in
// stream.updateWithAdvisory) when two clients created and updated one stream
// at once, a server bug of a class fixed upstream since (nats-server PR 4391).
const natsModule = "github.com/nats-io/nats-server/v2"

// BuildNATS returns the path of a nats-server built from natsModule at the
// version go.mod pins: bin/test/nats-server-<version>, shared like
// BuildPortal's build.
func BuildNATS(t testing.TB) string {
	t.Helper()
	return natsBuild.get(t, "nats-server", func(root string) (string, error) {
		cmd := exec.Command("go", "list", "-m", "-f", "{{.Version}}", natsModule)
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("go list -m %s: %w", natsModule, err)
		}
		return sharedBuild(root, "nats-server", strings.TrimSpace(string(out)), "", natsModule)
	})
}

// sharedBuild returns bin/test/<name>-<id>, building pkg with tags into it
// unless it is there. Other <name>-* builds unused for staleBuild are
// removed.
//
// Every shared build takes one file lock, bin/test/.lock: portal's and
// NATS's builds share most of their packages (-tags up embeds NATS), and
// two go builds at once compile each shared package twice (the build cache
// holds only finished work), so the second to come waits and then compiles
// little more than its main package (on a fresh build cache, both at once
// took 344 s of CPU here, one after the other 317 s).
func sharedBuild(root, name, id, tags, pkg string) (string, error) {
	dir := filepath.Join(root, buildDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	unlock, err := lockFile(filepath.Join(dir, buildLock))
	if err != nil {
		return "", err
	}
	defer unlock()
	bin := filepath.Join(dir, name+"-"+id)
	defer removeOtherBuilds(dir, name, bin, time.Now().Add(-staleBuild))
	if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() {
		// Its modification time is its last use.
		now := time.Now()
		return bin, os.Chtimes(bin, now, now)
	}
	return bin, goBuild(root, bin, tags, pkg)
}

// sourceHash is a hex SHA-256 over the Go version and the path and contents
// of every file a build of the module reads: everything under root except
// tests, documentation, bin/, data/, hidden and testdata directories.
func sourceHash(root string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "go %s %s/%s tags %s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, BuildTags)
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			switch {
			case rel == ".":
				return nil
			case strings.HasPrefix(d.Name(), "."), d.Name() == "testdata",
				rel == "bin", rel == "data", rel == "tmp", rel == "docs":
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || strings.HasSuffix(path, "_test.go") || strings.HasSuffix(path, ".md") {
			return nil
		}
		files = append(files, rel)
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Strings(files)
	for _, rel := range files {
		f, err := os.Open(filepath.Join(root, rel))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00", rel)
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// lockFile takes an exclusive flock on path, waiting for it; the returned
// func releases it.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// goBuild builds pkg with tags to bin through a temporary name in the same
// directory, so that bin appears whole or not at all. It passes go build's
// default flags, as make test's go test does (the Makefile's TEST_FLAGS set
// no compiler flags), so that the test binaries and these builds share one
// compile of every package: a compiler flag here alone would compile the
// module's whole dependency tree twice on a new machine.
func goBuild(root, bin, tags, pkg string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("no go command on $PATH: %w", err)
	}
	tmp := bin + ".tmp"
	cmd := exec.Command(goBin, "build", "-tags", tags, "-o", tmp, pkg)
	cmd.Dir = root
	began := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("go build %s in %s: %v\n%s", pkg, root, err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		os.Remove(tmp)
		return err
	}
	fmt.Fprintf(os.Stderr, "testenv: built %s in %v\n", bin, time.Since(began).Round(time.Millisecond))
	return nil
}

// removeOtherBuilds deletes every <name>-* in dir but keep last used
// (modified) before cutoff: builds of older sources or versions,
// half-written ones of a killed run.
func removeOtherBuilds(dir, name, keep string, cutoff time.Time) {
	old, _ := filepath.Glob(filepath.Join(dir, name+"-*"))
	for _, p := range old {
		if fi, err := os.Stat(p); err == nil && p != keep && fi.ModTime().Before(cutoff) {
			os.Remove(p)
		}
	}
}
