package config

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// sourceParsers are the ways a document reaches the settings: an admin's
// edit, the watched file (read at start, and by the watcher), and etcd's
// bytes through the same reader the watcher uses.
func sourceParsers(t *testing.T) map[string]func(doc string) (Settings, error) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	return map[string]func(string) (Settings, error){
		"edit": func(doc string) (Settings, error) { return Parse([]byte(doc)) },
		"file": func(doc string) (Settings, error) {
			path := filepath.Join(t.TempDir(), "portal.yaml")
			if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := OpenFile(path, log)
			if err != nil {
				return Settings{}, err
			}
			defer c.Close()
			return *c.Current(), nil
		},
		"etcd": func(doc string) (Settings, error) {
			cs, err := newReader().Merge((&etcdSource{}).changeSet([]byte(doc)))
			if err != nil {
				return Settings{}, err
			}
			return decode(cs.Data)
		},
	}
}

// TestOneParser: the file, etcd and an admin's edit accept and reject the
// same documents: a key in the wrong case or misspelt is refused by all
// three, not only by the API.
func TestOneParser(t *testing.T) {
	bad := map[string]string{
		"key in the wrong case": "auth:\n  expiretime: 600\n",
		"misspelt key":          "auth:\n  expireTimeout: 600\n",
		"unknown section":       "billing:\n  x: 1\n",
		"section not a mapping": "auth: 5\n",
		"wrong type":            "login:\n  maxFailures: many\n",
		"invalid value":         "auth:\n  expireTime: 1\n",
	}
	parsers := sourceParsers(t)
	for name, doc := range bad {
		for via, parse := range parsers {
			if s, err := parse(doc); err == nil {
				t.Errorf("%s via %s: accepted as %+v", name, via, s)
			}
		}
	}
	good := "auth:\n  expireTime: 600\nlogin:\n  maxFailures: 3\n"
	for via, parse := range parsers {
		s, err := parse(good)
		if err != nil || s.Auth.ExpireTime != 600 || s.Login.MaxFailures != 3 {
			t.Errorf("a valid document via %s: %+v, %v", via, s, err)
		}
	}
}

// TestCheckDuringFirstEdit: Check, a readiness probe called at any time,
// reads the source the first edit of a file-backed center attaches (run
// with -race).
func TestCheckDuringFirstEdit(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := OpenFile(filepath.Join(t.TempDir(), "portal.yaml"), log)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				if err := c.Check(context.Background()); err != nil && !errors.Is(err, os.ErrNotExist) {
					t.Errorf("Check: %v", err)
				}
			}
		}
	})
	if _, _, err := c.Update([]byte("auth:\n  expireTime: 600\n")); err != nil {
		t.Errorf("Update: %v", err)
	}
	close(stop)
	wg.Wait()
	if err := c.Check(context.Background()); err != nil {
		t.Errorf("Check after the edit: %v", err)
	}
}
