package platform

import (
	"context"
	"sort"
	"strings"
	"sync"

	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/selector"

	"github.com/portal-go/portal/internal/endpoint"
)

// Retries is how many times a failed call is tried again, on another node.
const Retries = 2

// Retry is Portal's client.RetryFunc. A call that never reached a server
// (connection refused, no node) is retried whatever it is; one that may have
// reached it (a timeout, a broken connection) only when the callee's endpoint
// table says it is safe to retry (endpoint.Retryable).
// Errors from a handler are answers, never retried.
func Retry(ctx context.Context, req client.Request, _ int, err error) (bool, error) {
	if err == nil || ctx.Err() != nil {
		return false, nil
	}
	e := merrors.FromError(err)
	if e.Id != "go.micro.client" && e.Code != 0 {
		return false, nil // the service answered
	}
	msg := strings.ToLower(err.Error())
	if strings.Contains(msg, "connection refused") || strings.Contains(msg, "no such host") ||
		strings.Contains(msg, "not found") && strings.Contains(msg, "service") {
		return true, nil
	}
	return endpoint.Retryable(req.Service(), req.Endpoint()), nil
}

// roundRobin is a client wrapper that spreads calls over a service's nodes
// in turn. go-micro v4's selector.RoundRobin starts a fresh iterator at a
// random node on every call, and the roundrobin wrapper plugin walks the
// nodes in whatever order the registry returns them; this one sorts them.
type roundRobin struct {
	client.Client
	mu   sync.Mutex
	next map[string]int
}

// RoundRobin returns a client.Wrapper that picks nodes in turn, so that a
// retry lands on the next node.
func RoundRobin() client.Wrapper {
	return func(c client.Client) client.Client {
		return &roundRobin{Client: c, next: map[string]int{}}
	}
}

// Call adds the round-robin strategy to the call.
func (r *roundRobin) Call(ctx context.Context, req client.Request, rsp interface{}, opts ...client.CallOption) error {
	strategy := func(services []*registry.Service) selector.Next {
		var nodes []*registry.Node
		for _, s := range services {
			nodes = append(nodes, s.Nodes...)
		}
		sort.Slice(nodes, func(i, j int) bool { return nodes[i].Id < nodes[j].Id })
		return func() (*registry.Node, error) {
			if len(nodes) == 0 {
				return nil, selector.ErrNoneAvailable
			}
			r.mu.Lock()
			i := r.next[req.Service()]
			r.next[req.Service()] = i + 1
			r.mu.Unlock()
			return nodes[i%len(nodes)], nil
		}
	}
	return r.Client.Call(ctx, req, rsp, append(opts, client.WithSelectOption(selector.WithStrategy(strategy)))...)
}
