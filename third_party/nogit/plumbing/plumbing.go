// Package plumbing holds the go-git plumbing types go-micro's runtime names.
package plumbing

import "encoding/hex"

// Hash is a SHA-1 object name.
type Hash [20]byte

// ReferenceName is a reference's full name, such as "refs/heads/main".
type ReferenceName string

// IsHash tells whether s is a full hexadecimal SHA-1.
func IsHash(s string) bool {
	if len(s) != 40 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// NewHash parses a hexadecimal SHA-1; what does not parse gives the zero Hash.
func NewHash(s string) Hash {
	var h Hash
	b, _ := hex.DecodeString(s)
	copy(h[:], b)
	return h
}

// NewBranchReferenceName names the branch's reference.
func NewBranchReferenceName(name string) ReferenceName {
	return ReferenceName("refs/heads/" + name)
}
