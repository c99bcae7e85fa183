package platform

import (
	"context"
	"errors"
	"sync"
	"time"

	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/selector"
	util "go-micro.dev/v4/util/registry"
)

// DefaultSelectorTTL is how long a client's selector keeps a service's nodes
// before it asks the registry again (go-micro's default is a minute); the
// registry's watch updates them meanwhile.
const DefaultSelectorTTL = 10 * time.Second

// registryRefresh is how often a lastGoodRegistry asks the registry again
// about every service it has a view of, so that the view an outage leaves it
// with is at most this old.
const registryRefresh = time.Second

// registryWait is how long a caller holding a view of a service waits for
// the registry's fresh answer before it takes the view (lastGoodRegistry).
const registryWait = 500 * time.Millisecond

// lastGoodRegistry asks the registry for a service and, when the registry
// does not answer within registryWait (etcd away: each question waits out a
// 5 s timeout) or fails, answers with the last good view of the service;
// while the registry is away it answers from the views at once and asks
// again in the background (one question per service at a time), and the
// first answer brings it back. A service it has not seen yet waits for the
// registry's own answer. Every registryRefresh it asks again about each
// service it has a view of (keep), so that an outage finds the views fresh.
//
// go-micro's selector cache returns its stale entry when the registry fails
// but does not renew it, so that once its TTL had passed every call waited
// out the registry's timeout (issue 18, finding 6).
type lastGoodRegistry struct {
	registry.Registry
	mu      sync.Mutex
	views   map[string][]*registry.Service
	pending map[string]*question
	away    bool // the last question failed or was not answered in time
}

// question is one GetService to the registry underneath.
type question struct {
	done chan struct{}
	list []*registry.Service
	err  error
}

func newLastGood(r registry.Registry) *lastGoodRegistry {
	return &lastGoodRegistry{Registry: r, views: map[string][]*registry.Service{}, pending: map[string]*question{}}
}

// GetService returns the registry's answer, or the last good view of name
// while the registry is away.
func (r *lastGoodRegistry) GetService(name string, opts ...registry.GetOption) ([]*registry.Service, error) {
	r.mu.Lock()
	view, ok := r.views[name]
	q := r.ask(name, opts)
	away := r.away
	r.mu.Unlock()
	if ok && away {
		return util.Copy(view), nil
	}
	var late <-chan time.Time
	if ok {
		t := time.NewTimer(registryWait)
		defer t.Stop()
		late = t.C
	}
	select {
	case <-q.done:
	case <-late:
		r.mu.Lock()
		r.away = true
		r.mu.Unlock()
		return util.Copy(view), nil
	}
	if q.err != nil && !errors.Is(q.err, registry.ErrNotFound) && ok {
		return util.Copy(view), nil
	}
	return util.Copy(q.list), q.err
}

// ask returns the question about name in flight, or asks one. Called with
// r.mu held.
func (r *lastGoodRegistry) ask(name string, opts []registry.GetOption) *question {
	if q, ok := r.pending[name]; ok {
		return q
	}
	q := &question{done: make(chan struct{})}
	r.pending[name] = q
	go func() {
		list, err := r.Registry.GetService(name, opts...)
		r.mu.Lock()
		switch {
		case err == nil:
			r.views[name], r.away = util.Copy(list), false
		case errors.Is(err, registry.ErrNotFound):
			delete(r.views, name)
			r.away = false
		default:
			r.away = true
		}
		delete(r.pending, name)
		q.list, q.err = list, err
		r.mu.Unlock()
		close(q.done)
	}()
	return q
}

// keep asks about every service with a view each registryRefresh, until
// stop is closed.
func (r *lastGoodRegistry) keep(stop <-chan struct{}) {
	t := time.NewTicker(registryRefresh)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		r.mu.Lock()
		for name := range r.views {
			r.ask(name, nil)
		}
		r.mu.Unlock()
	}
}

// String names the registry underneath.
func (r *lastGoodRegistry) String() string { return r.Registry.String() }

// keepLastGood makes the client's selector look services up through a
// lastGoodRegistry on the client's registry (the one go-micro's cmd chose),
// kept fresh until the service stops, the selector keeping nodes for ttl; an
// in-process memory registry is left as it is.
func (s *Service) keepLastGood(ttl time.Duration) error {
	o := s.Client().Options()
	if o.Registry == nil || o.Selector == nil || o.Registry.String() == "memory" {
		return nil
	}
	if ttl <= 0 {
		ttl = DefaultSelectorTTL
	}
	lg := newLastGood(o.Registry)
	go lg.keep(s.stopped)
	return o.Selector.Init(selector.Registry(lg), func(so *selector.Options) {
		if so.Context == nil {
			so.Context = context.Background()
		}
		// The key go-micro's selector reads (selector/default.go): a string,
		// so a key of our own type would not be seen.
		//lint:ignore SA1029 go-micro's selector reads this string key
		so.Context = context.WithValue(so.Context, "selector_ttl", ttl)
	})
}
