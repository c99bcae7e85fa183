package portal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/portal-go/portal/internal/platform"
)

// DefaultProfileAddress is where pprof listens with --profile http.
const DefaultProfileAddress = "127.0.0.1:6060"

// metricsMux serves a service's metrics, liveness and readiness on its own
// listener (--metrics_address), for services that have no HTTP port (user,
// system).
func metricsMux(m *platform.Metrics, svc *platform.Service) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.Handle("GET /readyz", svc.ReadyHandler())
	mux.Handle("GET /readyz/{check}", svc.ReadyHandler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	return mux
}

// pprofMux serves net/http/pprof. go-micro's own http profile is not used: it
// listens on ":6060" (every interface) with no way to choose, reports no
// listen error, and only starts from micro.Service.Run, which Portal does not
// call.
func pprofMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// checkProfileAddress refuses a pprof address that is not on loopback: a
// profiler shows memory contents and command lines, and can be made to burn
// CPU.
func checkProfileAddress(addr string) error {
	if !platform.LoopbackAddress(addr) {
		return fmt.Errorf("--profile_address %q (PORTAL_PROFILE_ADDRESS): pprof listens on loopback only (127.0.0.1, ::1 or localhost with a port)", addr)
	}
	return nil
}

// sideServer is a small HTTP listener beside a service's main work.
type sideServer struct {
	srv  *http.Server
	addr string
	done chan struct{}
}

// startSide listens on addr and serves h until stop. what names it in logs.
func startSide(what, addr string, h http.Handler, log *slog.Logger) (*sideServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	s := &sideServer{srv: NewHTTPServer(h), addr: ln.Addr().String(), done: make(chan struct{})}
	// A CPU profile or trace runs for ?seconds=N (30 by default).
	s.srv.WriteTimeout = 0
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error(what+" stopped", "err", err)
		}
	}()
	log.Info(what+" listening", "address", s.addr)
	return s, nil
}

func (s *sideServer) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if s.srv.Shutdown(ctx) != nil {
		_ = s.srv.Close()
	}
	<-s.done
}
