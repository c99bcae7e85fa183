// Package testenv starts what tests need on loopback ports the test holds:
// etcd, Redis and NATS, processes of the shared portal build (BuildPortal),
// certificates. Portal itself, in-process, is its subpackage portaltest.
package testenv

// AdminPassword is the first admin's password in every test Portal (the
// in-process ones of portaltest, and the built binary's where a test sets
// PORTAL_ADMIN_PASSWORD).
const AdminPassword = "admin-password-for-tests"

// RelaxedRates is a config section that lifts the rate limits of login and
// register (rateLimit.*) out of reach, for tests and benchmarks that log in
// or register more than a minute's worth from one address: append it to a
// config document that has no rateLimit section.
const RelaxedRates = "rateLimit:\n  loginPerAddress: 1000000\n  loginPerAccount: 1000000\n  registerPerAddress: 1000000\n  registerPerAccount: 1000000\n"
