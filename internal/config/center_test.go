package config

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portal-go/portal/internal/testenv/poll"
)

// recordHandler is a slog.Handler that keeps the messages logged.
type recordHandler struct {
	mu   *sync.Mutex
	msgs *[]string
}

func newRecorder() (*slog.Logger, func() []string) {
	h := recordHandler{mu: new(sync.Mutex), msgs: new([]string)}
	return slog.New(h), func() []string {
		h.mu.Lock()
		defer h.mu.Unlock()
		return append([]string(nil), *h.msgs...)
	}
}

func (h recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	*h.msgs = append(*h.msgs, r.Message)
	h.mu.Unlock()
	return nil
}
func (h recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h recordHandler) WithGroup(string) slog.Handler      { return h }

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func writeConfig(t *testing.T, path, doc string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}

// replaceConfig writes doc beside path and renames it over path, as editors
// and config-management tools do.
func replaceConfig(t *testing.T, path, doc string) {
	t.Helper()
	tmp := path + ".tmp"
	writeConfig(t, tmp, doc)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatalf("rename: %v", err)
	}
}

func openCenter(t *testing.T, path string, log *slog.Logger) *Center {
	t.Helper()
	c, err := OpenFile(path, log)
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestOpenFileMissing(t *testing.T) {
	c, err := OpenFile(filepath.Join(t.TempDir(), "nope.yaml"), discard())
	if err != nil {
		t.Fatalf("OpenFile(missing): %v", err)
	}
	if c.Source() != "built-in" {
		t.Errorf("Source() = %q, want built-in", c.Source())
	}
	if got, want := *c.Current(), Defaults(); !reflect.DeepEqual(got, want) {
		t.Errorf("Current() = %+v, want the defaults %+v", got, want)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestOpenFileInvalid(t *testing.T) {
	tests := []struct {
		name, doc string
	}{
		{"refreshTime equal to expireTime", "auth:\n  expireTime: 600\n  refreshTime: 600\n"},
		{"refreshTime above expireTime", "auth:\n  expireTime: 600\n  refreshTime: 900\n"},
		{"refreshTime above the default expireTime", "auth:\n  refreshTime: 1000\n"},
		{"expireTime too short", "auth:\n  expireTime: 1\n  refreshTime: 0\n"},
		{"sessionMaxAge too long", "auth:\n  sessionMaxAge: 99999999\n"},
		{"whitelist entry not a path", "auth:\n  whiteList: [\"login\"]\n"},
		{"expireTime not a number", "auth:\n  expireTime: soon\n"},
		{"whiteList not a list", "auth:\n  whiteList: 3\n"},
		{"not yaml", "auth: [unclosed\n  :: {\n"},
		{"yaml scalar, not a map", "just some words\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "portal.yaml")
			writeConfig(t, path, tc.doc)
			c, err := OpenFile(path, discard())
			if err == nil {
				c.Close()
				t.Fatalf("OpenFile accepted %q: %+v", tc.doc, c.Current())
			}
			if c != nil {
				t.Errorf("OpenFile returned a center with its error")
			}
		})
	}
}

func TestOpenFileValid(t *testing.T) {
	def := Defaults().Auth
	tests := []struct {
		name string
		doc  string
		want AuthSettings
	}{
		{
			name: "only expireTime",
			doc:  "auth:\n  expireTime: 1200\n",
			want: AuthSettings{WhiteList: def.WhiteList, ExpireTime: 1200, RefreshTime: def.RefreshTime, SessionMaxAge: def.SessionMaxAge},
		},
		{
			name: "everything",
			doc:  "auth:\n  whiteList:\n    - /a\n    - /b/*\n  expireTime: 60\n  refreshTime: 10\n  sessionMaxAge: 3600\n",
			want: AuthSettings{WhiteList: []string{"/a", "/b/*"}, ExpireTime: 60, RefreshTime: 10, SessionMaxAge: 3600},
		},
		{
			name: "empty whitelist replaces the default one",
			doc:  "auth:\n  whiteList: []\n",
			want: AuthSettings{WhiteList: []string{}, ExpireTime: def.ExpireTime, RefreshTime: def.RefreshTime, SessionMaxAge: def.SessionMaxAge},
		},
		{name: "empty file", doc: "", want: def},
		{name: "comments only", doc: "# nothing set\n", want: def},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "portal.yaml")
			writeConfig(t, path, tc.doc)
			c := openCenter(t, path, discard())
			if c.Source() != path {
				t.Errorf("Source() = %q, want %q", c.Source(), path)
			}
			if got := c.Current().Auth; !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Current().Auth = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func countMsg(msgs []string, prefix string) int {
	n := 0
	for _, m := range msgs {
		if strings.HasPrefix(m, prefix) {
			n++
		}
	}
	return n
}

func TestCenterWatchesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "portal.yaml")
	writeConfig(t, path, "auth:\n  expireTime: 1200\n")
	log, logged := newRecorder()
	c, err := OpenFile(path, log)
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			c.Close()
		}
	})
	expire := func(n int) func() bool {
		return func() bool { return c.Current().Auth.ExpireTime == n }
	}
	if !expire(1200)() {
		t.Fatalf("initial expireTime = %d, want 1200", c.Current().Auth.ExpireTime)
	}

	// A valid change, written in place, applies.
	writeConfig(t, path, "auth:\n  expireTime: 1800\n  refreshTime: 600\n")
	poll.Wait(t, 10*time.Second, "expireTime 1800 not applied", expire(1800))
	good := *c.Current()
	if good.Auth.RefreshTime != 600 || good.Auth.SessionMaxAge != Defaults().Auth.SessionMaxAge {
		t.Errorf("applied settings = %+v", good.Auth)
	}
	same := func() bool { return reflect.DeepEqual(*c.Current(), good) }

	// A change written by rename applies too.
	replaceConfig(t, path, "auth:\n  expireTime: 2400\n  refreshTime: 600\n")
	poll.Wait(t, 10*time.Second, "expireTime 2400 (renamed into place) not applied", expire(2400))
	good = *c.Current()

	// Valid yaml, invalid settings: logged, refused, the last good stays.
	rejected := countMsg(logged(), "config change rejected")
	writeConfig(t, path, "auth:\n  expireTime: 2400\n  refreshTime: 5000\n")
	poll.Wait(t, 10*time.Second, "the invalid change was never seen", func() bool {
		return countMsg(logged(), "config change rejected") > rejected
	})
	poll.Holds(t, 2*time.Second, "the last good settings after an invalid change", same)

	// Not yaml at all: the last good stays.
	writeConfig(t, path, "auth: [unclosed\n  :: {\n\x00\x01")
	poll.Holds(t, 2*time.Second, "the last good settings after a garbage file", same)

	// And the watch still works afterwards.
	writeConfig(t, path, "auth:\n  expireTime: 3000\n  refreshTime: 600\n")
	poll.Wait(t, 10*time.Second, "expireTime 3000 not applied after the bad files", expire(3000))

	// An emptied file is not a reason to fall back to the defaults.
	good = *c.Current()
	writeConfig(t, path, "")
	poll.Holds(t, 2*time.Second, "the last good settings after emptying the file", same)

	// Close returns, and stops the watching.
	done := make(chan error, 1)
	go func() { done <- c.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Close did not return")
	}
	closed = true
	select {
	case <-c.done:
	default:
		t.Fatalf("the watch goroutine still runs after Close")
	}
	writeConfig(t, path, "auth:\n  expireTime: 3600\n  refreshTime: 600\n")
	poll.Holds(t, time.Second, "the settings after Close", same)
}

func TestCenterConcurrentReaders(t *testing.T) {
	path := filepath.Join(t.TempDir(), "portal.yaml")
	writeConfig(t, path, "auth:\n  expireTime: 1000\n  refreshTime: 100\n  sessionMaxAge: 1000\n")
	c := openCenter(t, path, discard())

	// Every version written keeps expireTime == sessionMaxAge == 10*refreshTime:
	// a reader seeing a mix would see the invariant broken.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				a := c.Current().Auth
				if a.ExpireTime != a.SessionMaxAge || a.ExpireTime != 10*a.RefreshTime {
					errs <- "torn settings"
					return
				}
			}
		}()
	}
	for _, n := range []int{2000, 3000, 4000} {
		writeConfig(t, path, "auth:\n  expireTime: "+strconv.Itoa(n)+"\n  refreshTime: "+strconv.Itoa(n/10)+"\n  sessionMaxAge: "+strconv.Itoa(n)+"\n")
		poll.Wait(t, 10*time.Second, "change not applied", func() bool { return c.Current().Auth.ExpireTime == n })
	}
	close(stop)
	wg.Wait()
	select {
	case e := <-errs:
		t.Fatal(e)
	default:
	}
}

// TestCenterSeesChangeRightAfterOpen: go-micro starts watching the file in a
// goroutine after OpenFile has read it; a change in between must not be lost.
func TestCenterSeesChangeRightAfterOpen(t *testing.T) {
	for i := range 10 {
		path := filepath.Join(t.TempDir(), "portal.yaml")
		writeConfig(t, path, "auth:\n  expireTime: 1200\n")
		c, err := OpenFile(path, discard())
		if err != nil {
			t.Fatalf("OpenFile: %v", err)
		}
		writeConfig(t, path, "auth:\n  expireTime: 1500\n")
		poll.Wait(t, 10*time.Second, "round "+strconv.Itoa(i)+": the change made right after OpenFile was lost", func() bool {
			return c.Current().Auth.ExpireTime == 1500
		})
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
}

// TestCenterSeesChangeRightAfterGarbage: after an unparsable file go-micro
// stops watching for a second before it watches again; a valid file written
// then must still apply.
func TestCenterSeesChangeRightAfterGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "portal.yaml")
	writeConfig(t, path, "auth:\n  expireTime: 1200\n")
	log, logged := newRecorder()
	c := openCenter(t, path, log)
	// Make sure the watch is up: a first change applies.
	writeConfig(t, path, "auth:\n  expireTime: 1300\n")
	poll.Wait(t, 10*time.Second, "first change not applied", func() bool { return c.Current().Auth.ExpireTime == 1300 })

	writeConfig(t, path, "auth: [unclosed\n  :: {\n")
	// The loader reads the garbage and drops its watch; write the fix while
	// it is down: once the center has read (and refused) the garbage too.
	poll.Wait(t, 10*time.Second, "the garbage to be read", func() bool {
		return countMsg(logged(), "config change unreadable") > 0
	})
	writeConfig(t, path, "auth:\n  expireTime: 1400\n")
	poll.Wait(t, 10*time.Second, "the valid file written after a garbage one was never applied", func() bool {
		return c.Current().Auth.ExpireTime == 1400
	})
	if n := countMsg(logged(), "config applied"); n < 2 {
		t.Errorf("%d changes logged as applied, want 2", n)
	}
}

// listen makes c's OnChange record each change it hears, as Diff says it,
// and returns what it has heard so far.
func listen(c *Center) (heard func() []string) {
	var mu sync.Mutex
	var diffs []string
	c.OnChange(func(before, after Settings) {
		mu.Lock()
		defer mu.Unlock()
		diffs = append(diffs, Diff(before, after))
	})
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), diffs...)
	}
}

// watchedFile returns a center on the yaml file at path whose watcher runs
// afterRead between each read of the file and the apply of what it read.
// The caller closes it.
func watchedFile(t *testing.T, path string, afterRead func(c *Center)) *Center {
	t.Helper()
	c := &Center{log: discard(), source: path, path: path, kind: "file"}
	c.write = c.writeFile
	c.afterRead = func() { afterRead(c) }
	if err := c.attach(fileSource(path), false); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCenterDropsReadOlderThanEdit: the watcher read the file (600), then an
// edit wrote 900 and put it in force, then the watcher applied what it had
// read. That put 600 back in force, and told OnChange the file had gone
// back to 600 (a false version in the admin's history), until the edit's own
// write woke the watcher again. A read older than an edit is dropped.
func TestCenterDropsReadOlderThanEdit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "portal.yaml")
	writeConfig(t, path, "auth:\n  expireTime: 600\n")
	reads := 0 // the watcher's goroutine only
	second := make(chan struct{})
	c := watchedFile(t, path, func(c *Center) {
		reads++
		switch reads {
		case 1:
			if _, _, err := c.Update([]byte("auth:\n  expireTime: 900\n")); err != nil {
				t.Errorf("Update: %v", err)
			}
		case 2: // the read the edit's write caused: the first read has been applied, or not
			close(second)
		}
	})
	t.Cleanup(func() { _ = c.Close() })
	heard := listen(c)
	select {
	case <-second:
	case <-time.After(10 * time.Second):
		t.Fatal("the edit's write never reached the watcher")
	}
	if got := c.Current().Auth.ExpireTime; got != 900 {
		t.Errorf("after the edit, expireTime %d is in force, want 900", got)
	}
	if h := heard(); len(h) != 0 {
		t.Errorf("OnChange heard %q: the file never changed but by the edit", h)
	}
}

// TestCenterCloseWhileApplying: Close waits for the watcher, which takes
// the center's lock to apply what it read: Close must not hold that lock
// while it waits.
func TestCenterCloseWhileApplying(t *testing.T) {
	path := filepath.Join(t.TempDir(), "portal.yaml")
	writeConfig(t, path, "auth:\n  expireTime: 600\n")
	reading := make(chan struct{})
	var once sync.Once
	c := watchedFile(t, path, func(c *Center) {
		once.Do(func() { close(reading) })
		<-c.quit // Close has begun
	})
	<-reading
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close deadlocked with the watcher's apply")
	}
}
