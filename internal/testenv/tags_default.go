//go:build !up

package testenv

// BuildTags are the tags BuildPortal builds with: the test binary's own. A
// test binary of the default build (make test) runs the default portal, the
// one go build ./cmd/portal gives, which has no portal up.
const BuildTags = ""
