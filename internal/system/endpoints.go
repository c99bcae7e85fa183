package system

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/ghodss/yaml"

	"github.com/portal-go/portal/internal/endpoint"
	pb "github.com/portal-go/portal/proto/system"
)

// Endpoints are the system service's RPCs, each with the permission it
// needs and its route in the gateway's JSON API.
var Endpoints = endpoint.Declare("system",
	endpoint.Endpoint{Name: "System.Health", Access: endpoint.Public, Retry: true},
	endpoint.Endpoint{Name: "System.Overview", Access: endpoint.OverviewRead, Retry: true,
		Routes: endpoint.Routes(endpoint.JSON[pb.OverviewRequest]("GET", "/admin/overview", 0, nil, func(r *pb.OverviewResponse) any {
			return map[string]any{
				"users": r.Users, "disabled_users": r.DisabledUsers, "active_sessions": r.ActiveSessions,
				"services_up": r.ServicesUp, "nodes": r.Nodes, "hours": endpoint.OrEmpty(r.Hours),
			}
		}))},
	endpoint.Endpoint{Name: "System.ListServices", Access: endpoint.ServicesRead, Retry: true,
		Routes: endpoint.Routes(endpoint.JSON[pb.ListServicesRequest]("GET", "/admin/services", 0, nil, func(r *pb.ListServicesResponse) any {
			return map[string]any{"services": endpoint.OrEmpty(r.Services), "supervised": r.Supervised, "processes": endpoint.OrEmpty(r.Processes)}
		}))},
	endpoint.Endpoint{Name: "System.RestartService", Access: endpoint.ServicesRestart,
		Routes: endpoint.Routes(endpoint.JSON[pb.RestartServiceRequest, pb.RestartServiceResponse]("POST", "/admin/services/:name/restart", http.StatusAccepted,
			func(in endpoint.Input, r *pb.RestartServiceRequest) error {
				r.Name = in.Param("name")
				return nil
			}, nil))},
	endpoint.Endpoint{Name: "System.ServiceLogs", Access: endpoint.ServicesRead, Retry: true,
		Routes: endpoint.Routes(endpoint.JSON("GET", "/admin/services/:name/logs", 0, func(in endpoint.Input, r *pb.ServiceLogsRequest) error {
			r.Name = in.Param("name")
			return endpoint.QueryInts(in, map[string]*int32{"lines": &r.Lines})
		}, func(r *pb.ServiceLogsResponse) any { return map[string]any{"lines": endpoint.OrEmpty(r.Lines)} }))},
	endpoint.Endpoint{Name: "System.GetConfig", Access: endpoint.ConfigRead, Retry: true,
		Routes: endpoint.Routes(endpoint.JSON[pb.GetConfigRequest]("GET", "/admin/config", 0, nil, configJSON))},
	endpoint.Endpoint{Name: "System.UpdateConfig", Access: endpoint.ConfigWrite,
		Routes: endpoint.Routes(endpoint.JSON("PUT", "/admin/config", 0, bindConfig, configJSON))},
	endpoint.Endpoint{Name: "System.ConfigSchema", Access: endpoint.ConfigRead, Retry: true,
		Routes: endpoint.Routes(endpoint.JSON("GET", "/admin/config/schema", 0, func(in endpoint.Input, r *pb.ConfigSchemaRequest) error {
			r.Language = in.Language()
			return nil
		}, func(r *pb.ConfigSchemaResponse) any {
			keys := make([]any, 0, len(r.Keys))
			for _, k := range r.Keys {
				keys = append(keys, map[string]any{
					"key": k.Key, "type": k.Type, "unit": k.Unit, "choices": endpoint.OrEmpty(k.Choices),
					"default": json.RawMessage(k.DefaultJson), "description": k.Description,
				})
			}
			return map[string]any{"keys": keys}
		}))},
	endpoint.Endpoint{Name: "System.ConfigHistory", Access: endpoint.ConfigRead, Retry: true,
		Routes: endpoint.Routes(endpoint.JSON[pb.ConfigHistoryRequest]("GET", "/admin/config/history", 0, nil, func(r *pb.ConfigHistoryResponse) any {
			return map[string]any{"versions": endpoint.Present(endpoint.OrEmpty(r.Versions)), "current": r.Current}
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
		}, func(r *pb.ListAuditResponse) any {
			// time in seconds, as everywhere else in the API (the store
			// keeps milliseconds, for order).
			entries := endpoint.Present(endpoint.OrEmpty(r.Entries)).([]any)
			for _, e := range entries {
				m := e.(map[string]any)
				m["time"] = m["time"].(int64) / 1000
			}
			return map[string]any{"entries": entries, "total": r.Total, "next": r.Next}
		}))},
)

// bindConfig reads the new config: a JSON settings object ({"auth": {...},
// "login": {...}}; JSON is yaml too) or, with Content-Type
// application/yaml, a yaml document.
//
// ?version=N makes the change conditional: refused (409 config.conflict)
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
func configJSON(r *pb.ConfigResponse) any {
	var settings any
	if js, err := yaml.YAMLToJSON([]byte(r.Document)); err == nil {
		_ = json.Unmarshal(js, &settings)
	}
	return map[string]any{"config": settings, "yaml": r.Document, "source": r.Source, "writable": r.Writable, "version": r.Version}
}
