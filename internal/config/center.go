package config

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-micro/plugins/v4/config/encoder/yaml"
	"go-micro.dev/v4/config/reader"
	microjson "go-micro.dev/v4/config/reader/json"
	"go-micro.dev/v4/config/source"
	"go-micro.dev/v4/config/source/file"
)

// Center holds the current settings and keeps them in step with a go-micro
// config source. Current is safe to call from any goroutine.
type Center struct {
	cur    atomic.Pointer[Settings]
	log    *slog.Logger
	source string
	src    source.Source
	rd     reader.Reader
	quit   chan struct{}
	done   chan struct{}
	// closeOnce guards quit.
	closeOnce sync.Once
	// closers release the source's resources at Close.
	closers []func() error
	// mu guards the fields attach sets after the start (a file created by
	// the first edit), orders edits, and orders each edit against the
	// watcher's apply.
	mu sync.Mutex
	// edits counts the edits Update has put in force. The watcher applies
	// what it read only if no edit came in between: the document it read may
	// be older than the edit (the file as it was before the edit wrote it),
	// and the edit's own write wakes the watcher again anyway.
	edits uint64
	// closed is set by Close: an edit after it writes the source but starts
	// no watcher.
	closed bool
	// afterRead, when set (by tests), runs in the watcher between the read
	// of the source and the apply of what it read.
	afterRead func()
	// write replaces the source's document; nil when it cannot be written.
	write func(doc []byte) error
	// path is the file of a file-backed center, watched once it exists.
	path string
	// kind is the kind of source: "file" or "etcd"; "" for none.
	kind string
	// onChange hears the changes that came from the source.
	onChange atomic.Pointer[func(before, after Settings)]
}

// Static returns a center that always holds s (no source, no watching).
func Static(s Settings) (*Center, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	c := &Center{source: "built-in", done: make(chan struct{})}
	close(c.done)
	c.cur.Store(&s)
	return c, nil
}

// OpenFile loads settings from the yaml file at path and watches it: a valid
// change applies at once, an invalid one is logged and the last good settings
// stay. A missing file means the built-in defaults, unwatched; a file that is
// present but invalid at start is an error, so that a typo is not silently
// replaced by defaults.
func OpenFile(path string, log *slog.Logger) (*Center, error) {
	var c *Center
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		var err error
		if c, err = Static(Defaults()); err != nil {
			return nil, err
		}
		c.log = log
	} else {
		var err error
		if c, err = open(fileSource(path), path, log); err != nil {
			return nil, err
		}
	}
	c.path, c.kind = path, "file"
	c.write = c.writeFile
	return c, nil
}

func fileSource(path string) source.Source {
	return file.NewSource(file.WithPath(path), source.WithEncoder(yaml.NewEncoder()))
}

// open loads src and starts watching it; a source that cannot be read at
// start is an error.
func open(src source.Source, name string, log *slog.Logger) (*Center, error) {
	return openWith(src, name, log, false)
}

// retryAfter is how long the center waits before it reads or watches again a
// source that failed: unreadable at start, or its watch ended with an error.
const retryAfter = 2 * time.Second

// openWith is open; with tolerant, a source that cannot be read at start
// leaves the built-in defaults in force while it is retried in the
// background.
func openWith(src source.Source, name string, log *slog.Logger, tolerant bool) (*Center, error) {
	c := &Center{log: log, source: name}
	if err := c.attach(src, tolerant); err != nil {
		return nil, err
	}
	return c, nil
}

// attach loads src into c and starts watching it. The caller holds c.mu, or
// is the only one holding c.
func (c *Center) attach(src source.Source, tolerant bool) error {
	rd := newReader()
	s := Defaults()
	cs, loadErr := read(src, rd)
	switch {
	case loadErr == nil:
		var err error
		if s, err = decode(cs.Data); err != nil {
			return fmt.Errorf("config: %s: %w", c.source, err)
		}
	case !tolerant:
		return fmt.Errorf("config: load %s: %w", c.source, loadErr)
	default:
		c.log.Warn("config source unreadable: starting on the built-in defaults, retrying in the background", "source", c.source, "err", loadErr)
	}
	c.src, c.rd = src, rd
	c.quit, c.done = make(chan struct{}), make(chan struct{})
	c.cur.Store(&s)
	go c.watch(loadErr != nil)
	return nil
}

// read reads src's document through rd, into the reader's format.
func read(src source.Source, rd reader.Reader) (*source.ChangeSet, error) {
	cs, err := src.Read()
	if err != nil {
		return nil, err
	}
	return rd.Merge(cs)
}

// newReader is the reader every source's yaml document goes through on its
// way to decode: go-micro's json reader with a yaml encoder.
func newReader() reader.Reader {
	return microjson.NewReader(reader.WithEncoder(yaml.NewEncoder()))
}

// watch keeps the settings in step with the source until Close. Each round
// starts a watch, then reads the source, then waits for the watch's first
// event and stops it: a change made before the watch was up is caught by the
// read, one made after by the event, and a file replaced by rename (whose old
// inode the watch followed) is watched afresh. go-micro's config loader is
// not used: its watchers cannot be stopped without a race (Stop closes a
// channel the loader may still send on), so each Center left a goroutine
// behind, and a change between its read and its watch was lost.
func (c *Center) watch(unread bool) {
	defer close(c.done)
	for {
		w, err := c.src.Watch()
		if err == nil {
			err = c.reload(&unread)
			if err == nil {
				err = c.next(w)
			} else {
				_ = w.Stop()
			}
		}
		select {
		case <-c.quit:
			return
		default:
		}
		if err == nil {
			continue
		}
		if !unread {
			c.log.Error("config source watch failed, retrying", "source", c.source, "err", err)
		}
		select {
		case <-c.quit:
			return
		case <-time.After(retryAfter):
		}
	}
}

// next waits for w's next event, or for Close, and stops w.
func (c *Center) next(w source.Watcher) error {
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-c.quit:
		case <-stopped:
		}
		_ = w.Stop()
	}()
	_, err := w.Next()
	return err
}

// reload reads the source and applies its document. A document that cannot
// be parsed or is not valid keeps the last good settings and is not an error;
// a source that cannot be read is. unread is true while the source has never
// been read.
func (c *Center) reload(unread *bool) error {
	c.mu.Lock()
	edits := c.edits
	c.mu.Unlock()
	cs, err := c.src.Read()
	if err != nil {
		if !*unread {
			c.log.Error("config source unreadable, keeping the last good settings", "source", c.source, "err", err)
		}
		return err
	}
	if *unread {
		c.log.Info("config source readable again", "source", c.source)
		*unread = false
	}
	if cs, err = c.rd.Merge(cs); err != nil {
		c.log.Error("config change unreadable, keeping the last good settings", "source", c.source, "err", err)
		return nil
	}
	if c.afterRead != nil {
		c.afterRead()
	}
	c.apply(cs.Data, edits)
	return nil
}

// apply validates a changed document, read when Update had made edits
// edits, and swaps it in, or logs why not.
func (c *Center) apply(doc []byte, edits uint64) {
	if len(doc) == 0 || string(doc) == "null" || string(doc) == "{}" {
		// Most often a file caught mid-write (truncated, not yet filled):
		// never a reason to fall back to the defaults.
		c.log.Warn("config change ignored: empty document", "source", c.source)
		return
	}
	s, err := decode(doc)
	if err != nil {
		c.log.Error("config change rejected, keeping the last good settings", "source", c.source, "err", err)
		return
	}
	c.mu.Lock()
	if c.edits != edits {
		c.mu.Unlock()
		return // read before an edit that has replaced it since
	}
	before := c.cur.Load()
	if reflect.DeepEqual(&s, before) {
		c.mu.Unlock()
		return
	}
	c.cur.Store(&s)
	c.mu.Unlock()
	if f := c.onChange.Load(); f != nil {
		(*f)(*before, s)
	}
	c.log.Info("config applied", "source", c.source,
		"expireTime", s.Auth.ExpireTime, "refreshTime", s.Auth.RefreshTime,
		"sessionMaxAge", s.Auth.SessionMaxAge, "whiteList", len(s.Auth.WhiteList))
}

// OnChange makes f hear every change that comes from the source (an edit
// of the file, a put to etcd), not those Update makes, with the settings
// before and after. f runs on the watching goroutine: it must not block for
// long. A later call replaces f.
func (c *Center) OnChange(f func(before, after Settings)) { c.onChange.Store(&f) }

// Origin names the kind of source the settings in force come from: "file",
// "etcd", or "built-in" while there is none (no file yet).
func (c *Center) Origin() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.src == nil {
		return "built-in"
	}
	return c.kind
}

// Current returns the settings in force. Callers must not modify them.
func (c *Center) Current() *Settings { return c.cur.Load() }

// Source names where the settings come from.
func (c *Center) Source() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.source
}

// Check reads the source once, to tell whether it answers (a readiness
// check; the settings in force do not change). A center on built-in defaults
// has nothing to reach.
func (c *Center) Check(context.Context) error {
	// The first edit of a file-backed center attaches its source (under
	// c.mu): read both under the lock, the source itself outside it.
	c.mu.Lock()
	src, name := c.src, c.source
	c.mu.Unlock()
	if src == nil {
		return nil
	}
	if _, err := src.Read(); err != nil {
		return fmt.Errorf("config: %s: %w", name, err)
	}
	return nil
}

// Close stops watching. It waits for the watcher without holding c.mu,
// which the watcher takes to apply what it read.
func (c *Center) Close() error {
	c.mu.Lock()
	c.closed = true
	quit, done, closers := c.quit, c.done, c.closers
	c.mu.Unlock()
	if quit == nil {
		return nil
	}
	c.closeOnce.Do(func() { close(quit) })
	<-done
	var err error
	for _, f := range closers {
		err = errors.Join(err, f())
	}
	return err
}
