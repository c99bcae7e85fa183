package supervisor

// NodesOf is nodesOf: the nodes of a service in a registry that a pid runs.
var NodesOf = nodesOf
