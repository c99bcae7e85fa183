// Package datadir writes the files Portal keeps in its data dir (token keys,
// the config file it edits) so that a crash or power loss never leaves one
// empty or half written, and tells whether the dir can still be written.
package datadir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// WriteFile replaces the file at path with data, atomically and durably: the
// data goes to a temporary file in the same directory, which is synced,
// given perm and renamed over path, and then the directory is synced. A
// reader, or the process after a crash, finds either the old file (or none)
// or the new one whole, never a part of it.
func WriteFile(path string, data []byte, perm fs.FileMode) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Chmod(perm); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes a rename or creation in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// probeSize is what CheckWritable writes: a few blocks, so that a disk with
// only a sliver of space left counts as full.
const probeSize = 64 << 10

// CheckWritable writes, syncs and removes a small file in dir: nil when dir
// can be written (for readiness: a full or read-only disk makes every write
// of the service fail).
func CheckWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".portal-probe-*")
	if err != nil {
		return fmt.Errorf("data dir %s cannot be written: %w", dir, err)
	}
	defer os.Remove(f.Name())
	_, werr := f.Write(make([]byte, probeSize))
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("data dir %s cannot be written: %w", dir, err)
	}
	return nil
}
