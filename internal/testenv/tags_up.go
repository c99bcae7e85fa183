//go:build up

package testenv

// BuildTags are the tags BuildPortal builds with: the test binary's own. A
// test binary built with -tags up (make test-slow) runs a portal with portal
// up's embedded etcd and NATS (internal/supervisor/embed.go), which TestUp
// and TestRunInProcess need.
const BuildTags = "up"
