//go:build unix

package supervisor

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// killGroup sends SIGKILL to the process group of pid: go-micro's runtime
// starts each child as the leader of a group of its own.
func killGroup(pid int) error {
	return syscall.Kill(-pid, syscall.SIGKILL)
}

// lockFile takes an exclusive lock on path (created if missing) for as long
// as the process lives or until release: one supervisor per data dir. The
// kernel drops the lock when the process dies, however it dies.
func lockFile(path string) (release func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (%s)", ErrDataDirInUse, path)
		}
		return nil, err
	}
	return func() { f.Close() }, nil
}
