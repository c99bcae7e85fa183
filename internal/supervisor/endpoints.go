package supervisor

import "github.com/portal-go/portal/internal/endpoint"

// Endpoints are the runtime service's RPCs. The admin plane reaches them
// through the system service, which passes its caller's token on: the
// permission is checked here again.
var Endpoints = endpoint.Declare(ServiceName,
	endpoint.Endpoint{Name: "Runtime.List", Access: endpoint.ServicesRead, Retry: true},
	endpoint.Endpoint{Name: "Runtime.Restart", Access: endpoint.ServicesRestart},
	endpoint.Endpoint{Name: "Runtime.Logs", Access: endpoint.ServicesRead, Retry: true},
)
