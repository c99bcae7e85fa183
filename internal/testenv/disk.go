package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// SmallDisk is a tmpfs of a few MiB mounted for one test, to fill up or make
// read-only: a disk that fails the way a real one does.
type SmallDisk struct {
	// Dir is where it is mounted.
	Dir string
}

// MountSmallDisk mounts a tmpfs of size bytes on a fresh temporary
// directory and unmounts it when the test ends. Mounting needs root (CI runs
// as root): elsewhere the test is skipped, or failed when
// PORTAL_REQUIRE_SERVERS=1.
func MountSmallDisk(t testing.TB, size int) *SmallDisk {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir).CombinedOutput(); err != nil {
		why := fmt.Sprintf("cannot mount a tmpfs (needs root): %v: %s", err, out)
		if os.Getenv("PORTAL_REQUIRE_SERVERS") == "1" {
			t.Fatalf("%s (PORTAL_REQUIRE_SERVERS=1)", why)
		}
		t.Skip(why)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return &SmallDisk{Dir: dir}
}

// Fill writes a file in the disk until it is full and returns a function
// that removes it again.
func (d *SmallDisk) Fill(t testing.TB) (free func()) {
	t.Helper()
	f, err := os.CreateTemp(d.Dir, "filler-*")
	if err != nil {
		t.Fatalf("fill %s: %v", d.Dir, err)
	}
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	// What is left is less than a block of buf: fill it byte by byte.
	for {
		if _, err := f.Write(buf[:512]); err != nil {
			break
		}
	}
	_ = f.Close()
	return func() {
		if err := os.Remove(f.Name()); err != nil {
			t.Errorf("free %s: %v", d.Dir, err)
		}
	}
}

// ReadOnly remounts the disk read-only (on: true) or read-write.
func (d *SmallDisk) ReadOnly(t testing.TB, on bool) {
	t.Helper()
	mode := "remount,rw"
	if on {
		mode = "remount,ro"
	}
	if out, err := exec.Command("mount", "-o", mode, d.Dir).CombinedOutput(); err != nil {
		t.Fatalf("mount -o %s %s: %v: %s", mode, d.Dir, err, out)
	}
}
