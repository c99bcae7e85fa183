package platform

import (
	"errors"
	"sync"
	"testing"
	"time"

	"go-micro.dev/v4/registry"
)

// switchRegistry answers GetService with the nodes set, or fails, or hangs
// until released, as a test says.
type switchRegistry struct {
	registry.Registry
	mu    sync.Mutex
	nodes []string
	down  bool          // answer an error
	hang  chan struct{} // when not nil, wait for it to close
	asked int
}

func (f *switchRegistry) set(down bool, hang chan struct{}, nodes ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down, f.hang = down, hang
	if nodes != nil {
		f.nodes = nodes
	}
}

func (f *switchRegistry) GetService(string, ...registry.GetOption) ([]*registry.Service, error) {
	f.mu.Lock()
	f.asked++
	down, hang, nodes := f.down, f.hang, f.nodes
	f.mu.Unlock()
	if hang != nil {
		<-hang
	}
	if down {
		return nil, errors.New("etcd: context deadline exceeded")
	}
	svc := &registry.Service{Name: "user"}
	for _, n := range nodes {
		svc.Nodes = append(svc.Nodes, &registry.Node{Id: n})
	}
	return []*registry.Service{svc}, nil
}

// nodeIDs asks r about user and joins the node ids of its answer.
func nodeIDs(t *testing.T, r registry.Registry) string {
	t.Helper()
	list, err := r.GetService("user")
	if err != nil {
		t.Fatalf("GetService: %v", err)
	}
	var ids string
	for _, s := range list {
		for _, n := range s.Nodes {
			ids += n.Id
		}
	}
	return ids
}

// TestLastGoodRegistry: with the registry up, every answer is the
// registry's own, fresh; while it fails or hangs, the last good view, at
// once once it is known to be away; the background refresh keeps the view
// fresh, so that an outage finds the latest nodes; the first answer after
// the outage brings fresh answers back.
func TestLastGoodRegistry(t *testing.T) {
	f := &switchRegistry{nodes: []string{"a"}}
	r := newLastGood(f)
	if got := nodeIDs(t, r); got != "a" {
		t.Fatalf("first answer %q", got)
	}
	f.set(false, nil, "b")
	if got := nodeIDs(t, r); got != "b" {
		t.Fatalf("with the registry up, after a change: %q, want the registry's fresh b", got)
	}

	// The view changes in the registry while nobody asks; the refresh sees
	// it before the registry goes away.
	stop := make(chan struct{})
	defer close(stop)
	go r.keep(stop)
	f.set(false, nil, "c")
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.Lock()
		got := r.views["user"]
		r.mu.Unlock()
		if len(got) == 1 && len(got[0].Nodes) == 1 && got[0].Nodes[0].Id == "c" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the background refresh did not pick up the change")
		}
		time.Sleep(10 * time.Millisecond)
	}

	hang := make(chan struct{})
	f.set(true, hang)
	if got := nodeIDs(t, r); got != "c" {
		t.Fatalf("registry hanging: %q, want the last good c", got)
	}
	r.mu.Lock()
	away := r.away
	r.mu.Unlock()
	if !away {
		t.Fatal("a registry that did not answer in time is not marked away")
	}
	for range 3 {
		if got := nodeIDs(t, r); got != "c" {
			t.Fatalf("registry away: %q, want the last good c", got)
		}
	}
	close(hang)

	// Back: the first answer ends the outage.
	f.set(false, nil, "d")
	deadline = time.Now().Add(10 * time.Second)
	for nodeIDs(t, r) != "d" {
		if time.Now().After(deadline) {
			t.Fatal("fresh answers did not come back after the outage")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
