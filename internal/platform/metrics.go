package platform

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/server"
)

// Metrics are one Portal's Prometheus metrics, in a registry of their own
// rather than prometheus.DefaultRegisterer: tests run several Portals in one
// process, and each must count only its own requests.
type Metrics struct {
	Registry *prometheus.Registry

	HTTPRequests *prometheus.CounterVec   // portal_http_requests_total{route,method,status}
	HTTPDuration *prometheus.HistogramVec // portal_http_request_duration_seconds{route,method}
	RPCRequests  *prometheus.CounterVec   // portal_rpc_requests_total{service,endpoint,code}
	RPCDuration  *prometheus.HistogramVec // portal_rpc_request_duration_seconds{service,endpoint}

	Events        *prometheus.CounterVec   // portal_events_handled_total{service,topic,result}
	EventDuration *prometheus.HistogramVec // portal_event_handle_duration_seconds{service,topic}

	AuditDropped *prometheus.CounterVec // portal_audit_dropped_total{reason}
}

// NewMetrics builds a registry holding the Go runtime and process collectors
// and Portal's HTTP and RPC metrics.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portal_http_requests_total",
			Help: "HTTP requests the gateway answered, by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "portal_http_request_duration_seconds",
			Help:    "Time the gateway took to answer, by route pattern and method.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "method"}),
		RPCRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portal_rpc_requests_total",
			Help: "RPC requests a service handled, by service, endpoint and go-micro error code (200 for success).",
		}, []string{"service", "endpoint", "code"}),
		RPCDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "portal_rpc_request_duration_seconds",
			Help:    "Time a service's handler took, by service and endpoint.",
			Buckets: prometheus.DefBuckets,
		}, []string{"service", "endpoint"}),
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portal_events_handled_total",
			Help: "Broker events a service's subscribers handled, by service, topic and result (ok or error).",
		}, []string{"service", "topic", "result"}),
		EventDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "portal_event_handle_duration_seconds",
			Help:    "Time a service's subscriber took, by service and topic.",
			Buckets: prometheus.DefBuckets,
		}, []string{"service", "topic"}),
		AuditDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portal_audit_dropped_total",
			Help: "Audit entries the log dropped to stay within its bounds, by reason: age (past the retention) or size (past the most entries, oldest first).",
		}, []string{"reason"}),
	}
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.HTTPRequests, m.HTTPDuration, m.RPCRequests, m.RPCDuration, m.Events, m.EventDuration, m.AuditDropped,
	)
	return m
}

// Handler serves the registry in Prometheus' text format. It does no access
// control: callers decide who may reach it.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// RPCCode is the code an RPC's outcome is counted under: 200 for success,
// else the go-micro error's code (500 for an error that carries none).
func RPCCode(err error) int {
	if err == nil {
		return http.StatusOK
	}
	if e := merrors.FromError(err); e != nil && e.Code != 0 {
		return int(e.Code)
	}
	return http.StatusInternalServerError
}

// HandlerWrapper counts and times every handler call of the service named
// service. The endpoint label is the registered endpoint ("User.Login"),
// so its cardinality is bounded by the handlers a service registers. A panic
// is counted as a 500 and passed on to the recover wrapper outside.
func (m *Metrics) HandlerWrapper(service string) server.HandlerWrapper {
	return func(next server.HandlerFunc) server.HandlerFunc {
		return func(ctx context.Context, req server.Request, rsp interface{}) (err error) {
			start := time.Now()
			panicked := true
			defer func() {
				code := RPCCode(err)
				if panicked {
					code = http.StatusInternalServerError
				}
				m.RPCRequests.WithLabelValues(service, req.Endpoint(), strconv.Itoa(code)).Inc()
				m.RPCDuration.WithLabelValues(service, req.Endpoint()).Observe(time.Since(start).Seconds())
			}()
			err = next(ctx, req, rsp)
			panicked = false
			return err
		}
	}
}

// SubscriberWrapper counts and times every event the subscribers of the
// service named service handle. The topic label is bounded by the topics a
// service subscribes to. A panic is counted as an error and passed on.
func (m *Metrics) SubscriberWrapper(service string) server.SubscriberWrapper {
	return func(next server.SubscriberFunc) server.SubscriberFunc {
		return func(ctx context.Context, msg server.Message) (err error) {
			start := time.Now()
			panicked := true
			defer func() {
				result := "ok"
				if panicked || err != nil {
					result = "error"
				}
				m.Events.WithLabelValues(service, msg.Topic(), result).Inc()
				m.EventDuration.WithLabelValues(service, msg.Topic()).Observe(time.Since(start).Seconds())
			}()
			err = next(ctx, msg)
			panicked = false
			return err
		}
	}
}

// LoopbackAddress reports whether addr (host:port) names a loopback host:
// 127.0.0.0/8, ::1 or localhost. An empty host (all interfaces) is not.
func LoopbackAddress(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
