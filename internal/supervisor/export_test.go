package supervisor

// Embedded tells the external tests whether this test binary has portal
// up's embedded etcd and NATS (built with -tags up, as make test does).
const Embedded = embedded

// NodesOf is nodesOf: the nodes of a service in a registry that a pid runs.
var NodesOf = nodesOf
