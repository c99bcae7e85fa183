package system

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/ghodss/yaml"

	"github.com/portal-go/portal/internal/endpoint"
	runtimepb "github.com/portal-go/portal/proto/runtime"
	pb "github.com/portal-go/portal/proto/system"
)

// Endpoints are the system service's RPCs, each with the permission it
// needs and its route in the gateway's JSON API.
var Endpoints = endpoint.Declare("system",
	endpoint.Endpoint{Name: "System.Health", Access: endpoint.Public, Retry: true},
	endpoint.Endpoint{Name: "System.Overview", Access: endpoint.OverviewRead, Retry: true,
		Routes: endpoint.Routes(endpoint.JSON[pb.OverviewRequest]("GET", "/admin/overview", 0, nil, func(r *pb.OverviewResponse) overview {
			return overview{r.Users, r.DisabledUsers, r.ActiveSessions, r.ServicesUp, r.Nodes, endpoint.Present(r.Hours)}
		}))},
	endpoint.Endpoint{Name: "System.ListServices", Access: endpoint.ServicesRead, Retry: true,
		Routes: endpoint.Routes(endpoint.JSON[pb.ListServicesRequest]("GET", "/admin/services", 0, nil, func(r *pb.ListServicesResponse) services {
			return services{endpoint.Present(r.Services), r.Supervised, endpoint.Present(r.Processes)}
		}))},
	endpoint.Endpoint{Name: "System.RestartService", Access: endpoint.ServicesRestart,
		Routes: endpoint.Routes(endpoint.NoContent[pb.RestartServiceRequest, pb.RestartServiceResponse]("POST", "/admin/services/:name/restart", http.StatusAccepted,
			func(in endpoint.Input, r *pb.RestartServiceRequest) error {
				r.Name = in.Param("name")
				return nil
			}))},
	endpoint.Endpoint{Name: "System.ServiceLogs", Access: endpoint.ServicesRead, Retry: true,
		Routes: endpoint.Routes(endpoint.JSON("GET", "/admin/services/:name/logs", 0, func(in endpoint.Input, r *pb.ServiceLogsRequest) error {
			r.Name = in.Param("name")
			return endpoint.QueryInts(in, map[string]*int32{"lines": &r.Lines})
		}, func(r *pb.ServiceLogsResponse) logLines { return logLines{endpoint.OrEmpty(r.Lines)} }))},
	endpoint.Endpoint{Name: "System.GetConfig", Access: endpoint.ConfigRead, Retry: true,
		Routes: endpoint.Routes(endpoint.JSON[pb.GetConfigRequest]("GET", "/admin/config", 0, nil, configJSON))},
	endpoint.Endpoint{Name: "System.UpdateConfig", Access: endpoint.ConfigWrite,
		Routes: endpoint.Routes(endpoint.JSON("PUT", "/admin/config", 0, bindConfig, configJSON))},
	endpoint.Endpoint{Name: "System.ConfigSchema", Access: endpoint.ConfigRead, Retry: true,
		Routes: endpoint.Routes(endpoint.JSON("GET", "/admin/config/schema", 0, func(in endpoint.Input, r *pb.ConfigSchemaRequest) error {
			r.Language = in.Language()
			return nil
		}, func(r *pb.ConfigSchemaResponse) configSchema {
			keys := make([]configKey, 0, len(r.Keys))
			for _, k := range r.Keys {
				keys = append(keys, configKey{k.Key, k.Type, k.Unit, endpoint.OrEmpty(k.Choices), json.RawMessage(k.DefaultJson), k.Description})
			}
			return configSchema{keys}
		}))},
	endpoint.Endpoint{Name: "System.ConfigHistory", Access: endpoint.ConfigRead, Retry: true,
		Routes: endpoint.Routes(endpoint.JSON[pb.ConfigHistoryRequest]("GET", "/admin/config/history", 0, nil, func(r *pb.ConfigHistoryResponse) configHistory {
			return configHistory{endpoint.Present(endpoint.OrEmpty(r.Versions)), r.Current}
		}))},
	endpoint.Endpoint{Name: "System.RollbackConfig", Access: endpoint.ConfigWrite,
		Routes: endpoint.Routes(endpoint.JSON("POST", "/admin/config/rollback", 0, func(in endpoint.Input, r *pb.RollbackConfigRequest) error {
			var body struct {
				Version     *int64 `json:"version"`
				BaseVersion *int64 `json:"base_version"`
			}
			if err := in.DecodeJSON(&body); err != nil {
				return err
			}
			if body.Version == nil || *body.Version < 1 {
				return endpoint.BadInput("version must be a version number of the config's history")
			}
			r.Version, r.BaseVersion = *body.Version, body.BaseVersion
			return nil
		}, configJSON))},
	endpoint.Endpoint{Name: "System.ListAudit", Access: endpoint.AuditRead, Retry: true,
		Routes: endpoint.Routes(endpoint.JSON("GET", "/admin/audit", 0, func(in endpoint.Input, r *pb.ListAuditRequest) error {
			r.User, r.Kind, r.Cursor = in.Query("user"), in.Query("kind"), in.Query("cursor")
			return endpoint.QueryInts(in, map[string]*int32{"limit": &r.Limit})
		}, func(r *pb.ListAuditResponse) auditPage {
			// time in seconds, as everywhere else in the API (the store
			// keeps milliseconds, for order).
			for _, e := range r.Entries {
				e.Time /= 1000
			}
			return auditPage{endpoint.Present(r.Entries), r.Total, r.Next}
		}))},
)

// bindConfig reads the new config: a JSON settings object ({"auth": {...},
// "login": {...}}; JSON is yaml too) or, with Content-Type
// application/yaml, a yaml document.
//
// ?version=N makes the change conditional: refused (409 system.config_conflict)
// unless N is still the config's latest version.
func bindConfig(in endpoint.Input, r *pb.UpdateConfigRequest) error {
	if v := in.Query("version"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return &endpoint.InputError{Status: http.StatusBadRequest, Code: "request.bad_param", Message: "version must be a non-negative integer"}
		}
		r.BaseVersion = &n
	}
	switch in.MediaType() {
	case "application/yaml", "application/x-yaml", "text/yaml":
		body, err := in.Body()
		r.Document = string(body)
		return err
	}
	var raw json.RawMessage
	if err := in.DecodeJSON(&raw); err != nil {
		return err
	}
	r.Document = string(raw)
	return nil
}

// configJSON is the config as JSON (the settings object), with its yaml,
// source and whether it can be written. A document that is not yaml would
// be the service's bug: its JSON is then null.
func configJSON(r *pb.ConfigResponse) liveConfig {
	var settings map[string]any
	if js, err := yaml.YAMLToJSON([]byte(r.Document)); err == nil {
		_ = json.Unmarshal(js, &settings)
	}
	return liveConfig{settings, r.Document, r.Source, r.Writable, r.Version}
}

// The answers of the routes above.
type (
	overview struct {
		Users          int32                               `json:"users"`
		DisabledUsers  int32                               `json:"disabled_users"`
		ActiveSessions int32                               `json:"active_sessions"`
		ServicesUp     int32                               `json:"services_up"`
		Nodes          int32                               `json:"nodes"`
		Hours          endpoint.Presented[[]*pb.HourCount] `json:"hours"`
	}
	services struct {
		Services   endpoint.Presented[[]*pb.Service]        `json:"services"`
		Supervised bool                                     `json:"supervised"`
		Processes  endpoint.Presented[[]*runtimepb.Process] `json:"processes"`
	}
	logLines struct {
		Lines []string `json:"lines"`
	}
	auditPage struct {
		Entries endpoint.Presented[[]*pb.AuditEntry] `json:"entries"`
		Total   int32                                `json:"total"`
		// Next is the cursor of the next page ("": none).
		Next string `json:"next"`
	}
	liveConfig struct {
		// Config is the settings object (null: the document is not yaml).
		Config   map[string]any `json:"config"`
		YAML     string         `json:"yaml"`
		Source   string         `json:"source"`
		Writable bool           `json:"writable"`
		// Version is the document's version, for an edit's if_version.
		Version int64 `json:"version"`
	}
	configSchema struct {
		Keys []configKey `json:"keys"`
	}
	// configKey is one setting: its dotted key, type (and unit, choices),
	// default value and description in the caller's language.
	configKey struct {
		Key         string          `json:"key"`
		Type        string          `json:"type"`
		Unit        string          `json:"unit"`
		Choices     []string        `json:"choices"`
		Default     json.RawMessage `json:"default"`
		Description string          `json:"description"`
	}
	configHistory struct {
		Versions endpoint.Presented[[]*pb.ConfigVersion] `json:"versions"`
		// Current is the version in force.
		Current int64 `json:"current"`
	}
)
