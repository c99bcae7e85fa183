package platform

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/selector"

	"github.com/portal-go/portal/internal/endpoint"
)

// pickingClient is the client under the wrapper: it runs the select
// strategy the way go-micro's clients do and records the node it gets.
type pickingClient struct {
	client.Client
	services []*registry.Service
	picked   []string
}

func (p *pickingClient) Call(ctx context.Context, req client.Request, rsp interface{}, opts ...client.CallOption) error {
	var co client.CallOptions
	for _, o := range opts {
		o(&co)
	}
	var so selector.SelectOptions
	for _, o := range co.SelectOptions {
		o(&so)
	}
	if so.Strategy == nil {
		return errors.New("no strategy")
	}
	node, err := so.Strategy(p.services)()
	if err != nil {
		return err
	}
	p.picked = append(p.picked, node.Id)
	return nil
}

func TestRoundRobinSpreadsEvenly(t *testing.T) {
	// The registry may list nodes in any order, and across versions.
	orders := [][]*registry.Service{
		{{Name: "user", Version: "1", Nodes: []*registry.Node{{Id: "b"}, {Id: "a"}}}, {Name: "user", Version: "2", Nodes: []*registry.Node{{Id: "c"}}}},
		{{Name: "user", Version: "2", Nodes: []*registry.Node{{Id: "c"}}}, {Name: "user", Version: "1", Nodes: []*registry.Node{{Id: "a"}, {Id: "b"}}}},
	}
	inner := &pickingClient{}
	c := RoundRobin()(inner)
	req := client.NewRequest("user", "User.Info", nil)
	for i := 0; i < 300; i++ {
		inner.services = orders[i%2]
		if err := c.Call(context.Background(), req, nil); err != nil {
			t.Fatal(err)
		}
	}
	count := map[string]int{}
	for i, id := range inner.picked {
		count[id]++
		if i > 0 && id == inner.picked[i-1] {
			t.Fatalf("call %d went to %s again: %v", i, id, inner.picked[:i+1])
		}
	}
	if count["a"] != 100 || count["b"] != 100 || count["c"] != 100 {
		t.Fatalf("spread %v, want 100 each", count)
	}
}

// retryingClient runs a call's attempts the way go-micro's clients do (one
// strategy per call, Next per attempt, up to 1+Retries), refused by the node
// dead; after each refusal, before the retry, another call runs through
// outer, as concurrent calls do.
type retryingClient struct {
	client.Client
	outer    client.Client
	services []*registry.Service
	dead     string
	depth    int
	tried    [][]string // the nodes each top-level call tried
}

func (p *retryingClient) Call(ctx context.Context, req client.Request, rsp interface{}, opts ...client.CallOption) error {
	var co client.CallOptions
	for _, o := range opts {
		o(&co)
	}
	var so selector.SelectOptions
	for _, o := range co.SelectOptions {
		o(&so)
	}
	next := so.Strategy(p.services)
	top := p.depth == 0
	p.depth++
	defer func() { p.depth-- }()
	var tried []string
	defer func() {
		if top {
			p.tried = append(p.tried, tried)
		}
	}()
	for range 1 + Retries {
		node, err := next()
		if err != nil {
			return err
		}
		tried = append(tried, node.Id)
		if node.Id != p.dead {
			return nil
		}
		if top {
			_ = p.outer.Call(ctx, req, nil)
		}
	}
	return errors.New("connection refused")
}

// TestRoundRobinRetriesAnotherNode: the attempts of one call go to
// different nodes however many calls run between them, so that a call
// refused by a dead node reaches the live one (issue 18, finding 4: the
// counter shared by all calls sent every attempt of some calls to the dead
// node).
func TestRoundRobinRetriesAnotherNode(t *testing.T) {
	inner := &retryingClient{
		services: []*registry.Service{{Name: "user", Nodes: []*registry.Node{{Id: "a"}, {Id: "b"}}}},
		dead:     "a",
	}
	c := RoundRobin()(inner)
	inner.outer = c
	req := client.NewRequest("user", "User.Info", nil)
	for i := range 20 {
		if err := c.Call(context.Background(), req, nil); err != nil {
			t.Fatalf("call %d: %v; tried %v", i, err, inner.tried[len(inner.tried)-1])
		}
	}
	for i, tried := range inner.tried {
		if len(tried) == 2 && tried[0] == tried[1] {
			t.Fatalf("call %d tried %v", i, tried)
		}
	}
}

func TestRetry(t *testing.T) {
	refused := merrors.InternalServerError("go.micro.client", "connection error: dial tcp 127.0.0.1:1: connect: connection refused")
	timeout := merrors.Timeout("go.micro.client", "context deadline exceeded")
	for _, tc := range []struct {
		endpoint string
		err      error
		want     bool
	}{
		{"User.Register", refused, true}, // never reached a server: safe
		{"User.Login", refused, true},
		{"User.Register", timeout, false}, // may have run: not twice
		{"User.ChangePassword", timeout, false},
		{"User.Info", timeout, true}, // its table says it is safe
		{"User.Undeclared", timeout, false},
		{"System.ListServices", timeout, true},
		{"User.Info", merrors.NotFound("user.not_found", "no"), false}, // an answer
		{"User.Login", merrors.Unauthorized("user.bad_credentials", "no"), false},
		{"User.Info", merrors.InternalServerError("user.internal", "boom"), false},
		{"User.Info", nil, false},
		{"User.Info", fmt.Errorf("rpc error: code = Unavailable desc = connection refused"), true},
	} {
		req := client.NewRequest(retryTable.Service, tc.endpoint, nil)
		got, err := Retry(context.Background(), req, 0, tc.err)
		if err != nil || got != tc.want {
			t.Errorf("Retry(%s, %v) = %v, %v; want %v", tc.endpoint, tc.err, got, err, tc.want)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got, _ := Retry(ctx, client.NewRequest(retryTable.Service, "User.Info", nil), 0, timeout); got {
		t.Errorf("retried after the caller gave up")
	}
	if got, _ := Retry(context.Background(), client.NewRequest("undeclared", "User.Info", nil), 0, timeout); got {
		t.Errorf("retried a call to a service no table declares")
	}
}

// retryTable is what TestRetry's calls are to: the retry rule reads it.
var retryTable = endpoint.Declare("platform-test",
	endpoint.Endpoint{Name: "User.Register", Access: endpoint.Public},
	endpoint.Endpoint{Name: "User.Login", Access: endpoint.Public},
	endpoint.Endpoint{Name: "User.ChangePassword", Access: endpoint.SignedIn},
	endpoint.Endpoint{Name: "User.Info", Access: endpoint.SignedIn, Retry: true},
	endpoint.Endpoint{Name: "System.ListServices", Access: endpoint.ServicesRead, Retry: true},
)
