package datadir_test

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/portal-go/portal/internal/datadir"
	"github.com/portal-go/portal/internal/testenv"
)

// TestWriteFileIsAtomic: while a file is replaced again and again, every
// read finds one whole version, never an empty or partial file (issue 18,
// finding 8: os.WriteFile truncates first, and a crash then left the key
// files empty); the mode is the one asked for and no temporary file stays.
func TestWriteFileIsAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key.pem")
	versions := [][]byte{bytes.Repeat([]byte("a"), 256<<10), bytes.Repeat([]byte("b"), 256<<10)}
	if err := datadir.WriteFile(path, versions[0], 0o600); err != nil {
		t.Fatal(err)
	}
	var done atomic.Bool
	var wg sync.WaitGroup
	var bad atomic.Int64
	wg.Go(func() {
		for !done.Load() {
			b, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(b, versions[0]) && !bytes.Equal(b, versions[1]) {
				bad.Add(1)
			}
		}
	})
	for i := range 200 {
		if err := datadir.WriteFile(path, versions[i%2], 0o600); err != nil {
			t.Fatal(err)
		}
	}
	done.Store(true)
	wg.Wait()
	if n := bad.Load(); n > 0 {
		t.Fatalf("%d reads found a missing, empty or partial file", n)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("stat: %v, %v; want mode 0600", fi, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("dir holds %d entries, want the file alone", len(entries))
	}
}

// TestWriteFileFailsWhole: on a full disk WriteFile fails and leaves the old
// file as it was, and no temporary file behind.
func TestWriteFileFailsWhole(t *testing.T) {
	d := testenv.MountSmallDisk(t, 1<<20)
	path := filepath.Join(d.Dir, "portal.yaml")
	if err := datadir.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	free := d.Fill(t)
	if err := datadir.WriteFile(path, bytes.Repeat([]byte("n"), 256<<10), 0o644); err == nil {
		t.Fatal("WriteFile on a full disk succeeded")
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "old" {
		t.Fatalf("after a failed write: %d bytes, %v; want the old file", len(b), err)
	}
	free()
	if entries, _ := os.ReadDir(d.Dir); len(entries) != 1 {
		t.Fatalf("dir holds %d entries, want the file alone", len(entries))
	}
}

// TestCheckWritable: a dir that can be written passes; a full disk, a
// read-only one, a missing dir and a file fail.
func TestCheckWritable(t *testing.T) {
	if err := datadir.CheckWritable(t.TempDir()); err != nil {
		t.Fatalf("a fresh dir: %v", err)
	}
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{filepath.Join(t.TempDir(), "missing"), file} {
		if err := datadir.CheckWritable(dir); err == nil {
			t.Errorf("CheckWritable(%s) passed", dir)
		}
	}
	d := testenv.MountSmallDisk(t, 1<<20)
	free := d.Fill(t)
	if err := datadir.CheckWritable(d.Dir); err == nil {
		t.Error("a full disk passed")
	}
	free()
	if err := datadir.CheckWritable(d.Dir); err != nil {
		t.Errorf("after freeing the disk: %v", err)
	}
	d.ReadOnly(t, true)
	if err := datadir.CheckWritable(d.Dir); err == nil {
		t.Error("a read-only disk passed")
	}
	d.ReadOnly(t, false)
	if err := datadir.CheckWritable(d.Dir); err != nil {
		t.Errorf("read-write again: %v", err)
	}
}
