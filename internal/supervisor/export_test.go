package supervisor

// Embedded tells the external tests whether this test binary has portal
// up's embedded etcd and NATS (built with -tags up, as make test does).
const Embedded = embedded
