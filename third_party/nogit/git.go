// Package git stands in for go-git in Portal's build (go.mod replaces
// github.com/go-git/go-git/v5 with this module).
//
// Only go-micro's local runtime imports go-git, to check out a service's
// source from a repository when the service names one and no git binary is
// installed. Portal's supervisor runs its own binary and names no source, so
// the real go-git (about 60 packages with its SSH, OpenPGP and diff code)
// was never called, yet every Portal process paid for its package
// initialisation and resident pages: 2.6 MiB of idle RSS (README, Measured).
// Here every call fails with ErrLeftOut, and go-micro's runtime still checks
// sources out with the git binary when one is installed.
package git

import (
	"errors"
	"io"

	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
)

// ErrLeftOut is what every operation returns.
var ErrLeftOut = errors.New("go-git is left out of Portal's build: install the git binary to check out a service's source")

// NoErrAlreadyUpToDate is go-git's "nothing to fetch", which callers compare against.
var NoErrAlreadyUpToDate = errors.New("already up-to-date")

// CloneOptions are PlainClone's options.
type CloneOptions struct {
	URL      string
	Progress io.Writer
}

// FetchOptions are Remote.Fetch's options.
type FetchOptions struct {
	RefSpecs []config.RefSpec
	Progress io.Writer
	Depth    int
}

// CheckoutOptions are Worktree.Checkout's options.
type CheckoutOptions struct {
	Hash   plumbing.Hash
	Branch plumbing.ReferenceName
	Force  bool
}

// Repository is a repository that cannot be opened.
type Repository struct{}

// Remote is a repository's remote.
type Remote struct{}

// Worktree is a repository's working tree.
type Worktree struct{}

// PlainClone fails with ErrLeftOut.
func PlainClone(path string, isBare bool, o *CloneOptions) (*Repository, error) {
	return nil, ErrLeftOut
}

// PlainOpen fails with ErrLeftOut.
func PlainOpen(path string) (*Repository, error) { return nil, ErrLeftOut }

// Remotes fails with ErrLeftOut.
func (*Repository) Remotes() ([]*Remote, error) { return nil, ErrLeftOut }

// Worktree fails with ErrLeftOut.
func (*Repository) Worktree() (*Worktree, error) { return nil, ErrLeftOut }

// Fetch fails with ErrLeftOut.
func (*Remote) Fetch(o *FetchOptions) error { return ErrLeftOut }

// Checkout fails with ErrLeftOut.
func (*Worktree) Checkout(o *CheckoutOptions) error { return ErrLeftOut }
