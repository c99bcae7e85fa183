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
	microconfig "go-micro.dev/v4/config"
	"go-micro.dev/v4/config/loader"
	"go-micro.dev/v4/config/loader/memory"
	"go-micro.dev/v4/config/reader"
	microjson "go-micro.dev/v4/config/reader/json"
	"go-micro.dev/v4/config/source"
	"go-micro.dev/v4/config/source/file"
)

// Center holds the current settings and keeps them in step with a go-micro
// config source. Current is safe to call from any goroutine.
type Center struct {
	cur     atomic.Pointer[Settings]
	log     *slog.Logger
	source  string
	loader  loader.Loader
	watcher microconfig.Watcher
	watchUp <-chan struct{} // the loader (re)started watching src
	src     source.Source
	rd      reader.Reader
	quit    chan struct{}
	done    chan struct{}
	// closeOnce guards quit.
	closeOnce sync.Once
	// closers release the source's resources at Close.
	closers []func() error
	// mu guards the fields attach sets after the start (a file created by
	// the first edit) and orders edits.
	mu sync.Mutex
	// write replaces the source's document; nil when it cannot be written.
	write func(doc []byte) error
	// path is the file of a file-backed center, watched once it exists.
	path string
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
	c.path = path
	c.write = c.writeFile
	return c, nil
}

func fileSource(path string) source.Source {
	return file.NewSource(file.WithPath(path), source.WithEncoder(yaml.NewEncoder()))
}

// open loads src through go-micro's config and starts watching it; a source
// that cannot be read at start is an error.
func open(src source.Source, name string, log *slog.Logger) (*Center, error) {
	return openWith(src, name, log, false)
}

// loadRetry is how often a source unreadable at start is tried again.
const loadRetry = 2 * time.Second

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
	name := c.source
	// go-micro's loader reads src, then starts watching it in a goroutine
	// (and again after each watch error, a second later): a change made in
	// between is never signalled. watchingSource tells us each time the watch is
	// up, and the center then re-reads what it may have missed.
	ws := watchingSource{Source: src, up: make(chan struct{}, 1)}
	src = ws
	rd := newReader()
	// Our own loader, with go-micro config's background loop disabled: that
	// loop panics when it stops (it prints a nil error), and we watch ourselves.
	ld := memory.NewLoader(memory.WithReader(rd))
	cfg, err := microconfig.NewConfig(
		microconfig.WithLoader(ld),
		microconfig.WithReader(rd),
		microconfig.WithWatcherDisabled(),
	)
	if err != nil {
		ld.Close()
		return fmt.Errorf("config: %s: %w", name, err)
	}
	w, err := cfg.Watch()
	if err != nil {
		ld.Close()
		return fmt.Errorf("config: watch %s: %w", name, err)
	}
	s := Defaults()
	loadErr := ld.Load(src)
	switch {
	case loadErr == nil:
		snap, err := ld.Snapshot()
		if err == nil {
			s, err = decode(snap.ChangeSet.Data)
		}
		if err != nil {
			ld.Close()
			return fmt.Errorf("config: %s: %w", name, err)
		}
	case !tolerant:
		ld.Close()
		return fmt.Errorf("config: load %s: %w", name, loadErr)
	default:
		c.log.Warn("config source unreadable: starting on the built-in defaults, retrying in the background", "source", name, "err", loadErr)
	}
	c.loader, c.watcher, c.watchUp, c.src, c.rd = ld, w, ws.up, src, rd
	c.quit, c.done = make(chan struct{}), make(chan struct{})
	c.cur.Store(&s)
	go c.watch(loadErr != nil)
	return nil
}

// newReader is the reader every source's yaml document goes through on its
// way to decode: go-micro's json reader with a yaml encoder.
func newReader() reader.Reader {
	return microjson.NewReader(reader.WithEncoder(yaml.NewEncoder()))
}

// watchingSource is a source that reports on up each time it is watched.
type watchingSource struct {
	source.Source
	up chan struct{}
}

func (s watchingSource) Watch() (source.Watcher, error) {
	w, err := s.Source.Watch()
	if err == nil {
		select {
		case s.up <- struct{}{}:
		default: // a re-read is already due
		}
	}
	return w, err
}

// watch applies each change of the source. go-micro's watcher is used only as
// a signal: its delivered value can be stale (its one-slot channel drops the
// newer of two quick updates).
func (c *Center) watch(loadPending bool) {
	defer close(c.done)
	for loadPending {
		select {
		case <-c.quit:
			return
		case <-time.After(loadRetry):
		}
		// A successful Load signals the watcher below with the document.
		if err := c.loader.Load(c.src); err == nil {
			c.log.Info("config source readable again", "source", c.source)
			loadPending = false
		}
	}
	changed := make(chan struct{}, 1)
	go func() {
		// Never stopped: go-micro's watcher Stop closes a channel that its
		// loader may still send on (a data race, and a possible panic).
		// Closing the loader ends the source watch; this goroutine then
		// waits forever, which costs one goroutine per closed Center.
		for {
			if _, err := c.watcher.Next(); err != nil {
				return
			}
			select {
			case changed <- struct{}{}:
			default: // a re-read is already due
			}
		}
	}()
	for {
		select {
		case <-c.quit:
			return
		case <-changed:
		case <-c.watchUp:
		}
		// Every signal re-reads the source itself: the loader's snapshot
		// misses a change made while it was not watching (between its read
		// and its watch, or after a watch error), and reading the source in
		// this one goroutine means a later apply never brings back an older
		// document.
		cs, err := c.src.Read()
		if err == nil {
			cs, err = c.rd.Merge(cs)
		}
		if err != nil {
			c.log.Error("config change unreadable, keeping the last good settings", "source", c.source, "err", err)
			continue
		}
		c.apply(cs.Data)
	}
}

// apply validates a changed document and swaps it in, or logs why not.
func (c *Center) apply(doc []byte) {
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
	if reflect.DeepEqual(&s, c.cur.Load()) {
		return
	}
	c.cur.Store(&s)
	c.log.Info("config applied", "source", c.source,
		"expireTime", s.Auth.ExpireTime, "refreshTime", s.Auth.RefreshTime,
		"sessionMaxAge", s.Auth.SessionMaxAge, "whiteList", len(s.Auth.WhiteList))
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

// Close stops watching.
func (c *Center) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.watcher == nil {
		return nil
	}
	c.closeOnce.Do(func() {
		close(c.quit)
		c.loader.Close()
	})
	<-c.done
	var err error
	for _, f := range c.closers {
		err = errors.Join(err, f())
	}
	return err
}
