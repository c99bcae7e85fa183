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

// RoundRobin returns a client.Wrapper that picks nodes in turn: each call
// starts at the node after the one the previous call started at, and its
// retries go on to the nodes it has not tried yet, whatever other calls do
// meanwhile, so that a call retried after a dead node refused it reaches a
// live one.
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
		// The call's own state: where it started, how many nodes it has
		// tried. go-micro's clients ask the strategy once per call and its
		// Next once per attempt.
		start, attempts := 0, 0
		return func() (*registry.Node, error) {
			if len(nodes) == 0 {
				return nil, selector.ErrNoneAvailable
			}
			if attempts == 0 {
				r.mu.Lock()
				start = r.next[req.Service()]
				r.next[req.Service()] = start + 1
				r.mu.Unlock()
			}
			n := nodes[(start+attempts)%len(nodes)]
			attempts++
			return n, nil
		}
	}
	return r.Client.Call(ctx, req, rsp, append(opts, client.WithSelectOption(selector.WithStrategy(strategy)))...)
}
