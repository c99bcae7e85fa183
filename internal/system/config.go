package system

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"go-micro.dev/v4/auth"
	merrors "go-micro.dev/v4/errors"

	"github.com/portal-go/portal/internal/audit"
	pauth "github.com/portal-go/portal/internal/auth"
	"github.com/portal-go/portal/internal/config"
	"github.com/portal-go/portal/internal/i18n"
	pb "github.com/portal-go/portal/proto/system"
)

// The live config: read it, describe it, change it (an edit or a rollback,
// through one validated path), and its history. Every applied change is a
// version in History; an edit made from a version that is no longer the
// latest is refused (409 system.config_conflict) rather than silently overwriting
// the change made in between.

// Origins of a version.
const (
	originEdit     = "edit"
	originRollback = "rollback"
)

// GetConfig returns the config in force.
func (h *Handler) GetConfig(ctx context.Context, req *pb.GetConfigRequest, rsp *pb.ConfigResponse) error {
	head, err := h.History.Head()
	if err != nil {
		return unavailable("config history", err)
	}
	return h.configResponse(*h.Config.Current(), head, rsp)
}

func (h *Handler) configResponse(s config.Settings, version int64, rsp *pb.ConfigResponse) error {
	doc, err := config.Document(s)
	if err != nil {
		return merrors.InternalServerError("system.internal", "%v", err)
	}
	rsp.Document, rsp.Source, rsp.Writable, rsp.Version = string(doc), h.Config.Source(), h.Config.Writable(), version
	return nil
}

// UpdateConfig validates and writes a new config, records it as a version
// and audits who changed what.
func (h *Handler) UpdateConfig(ctx context.Context, req *pb.UpdateConfigRequest, rsp *pb.ConfigResponse) error {
	v := &Version{Origin: originEdit}
	if err := h.changeConfig(ctx, []byte(req.Document), req.BaseVersion, v); err != nil {
		return err
	}
	h.record(ctx, string(audit.KindConfigChange), "", "", config.DiffText(v.Changes))
	return h.configResponse(*h.Config.Current(), v.Version, rsp)
}

// RollbackConfig puts version req.Version's settings back, as a new version,
// through the same checks as an edit, and audits it as a rollback.
func (h *Handler) RollbackConfig(ctx context.Context, req *pb.RollbackConfigRequest, rsp *pb.ConfigResponse) error {
	old, err := h.History.Get(req.Version)
	if errors.Is(err, ErrVersionUnknown) {
		return merrors.NotFound("system.config_version_unknown", "the config history has no version %d", req.Version)
	} else if err != nil {
		return unavailable("config history", err)
	}
	v := &Version{Origin: originRollback, RollbackOf: req.Version}
	if err := h.changeConfig(ctx, []byte(old.Document), req.BaseVersion, v); err != nil {
		return err
	}
	h.record(ctx, string(audit.KindConfigRollback), "", "", "to version "+strconv.FormatInt(req.Version, 10)+": "+config.DiffText(v.Changes))
	return h.configResponse(*h.Config.Current(), v.Version, rsp)
}

// changeConfig applies doc: refused when base is set and is not the latest
// version; parsed and validated; the next version claimed in the history
// (atomically, so a change made meanwhile by another instance is a
// conflict too); then written to the source, the claim undone when that
// fails. v is filled in: its number, time, actor and changes. A change that
// changes nothing is written but makes no version.
func (h *Handler) changeConfig(ctx context.Context, doc []byte, base *int64, v *Version) error {
	if !h.Config.Writable() {
		return merrors.New("system.config_read_only", config.ErrReadOnly.Error(), http.StatusConflict)
	}
	h.configMu.Lock()
	defer h.configMu.Unlock()
	head, err := h.History.Head()
	if err != nil {
		return unavailable("config history", err)
	}
	if base != nil && *base != head {
		return conflict(*base, head)
	}
	next, err := config.Parse(doc)
	if err != nil {
		return badConfig(err)
	}
	v.Changes = config.Changes(*h.Config.Current(), next)
	v.Version = head
	if len(v.Changes) > 0 {
		canonical, err := config.Document(next)
		if err != nil {
			return merrors.InternalServerError("system.internal", "%v", err)
		}
		v.Time, v.Document = time.Now(), string(canonical)
		if acc, ok := auth.AccountFromContext(ctx); ok {
			v.ActorID, v.ActorName = acc.ID, acc.Metadata[pauth.MetaUsername]
		}
		ok, err := h.History.Append(head, v)
		if err != nil {
			return unavailable("config history", err)
		}
		if !ok {
			now, _ := h.History.Head()
			return conflict(head, now)
		}
	}
	if _, _, err := h.Config.Update(doc); err != nil {
		if len(v.Changes) > 0 {
			_ = h.History.Undo(v.Version) // the error below is what counts
		}
		switch {
		case errors.Is(err, config.ErrInvalid):
			return badConfig(err)
		case errors.Is(err, config.ErrReadOnly):
			return merrors.New("system.config_read_only", err.Error(), http.StatusConflict)
		}
		return unavailable("config source", err)
	}
	return nil
}

// badConfig is the error of a config refused as invalid, its problems
// structured for the gateway to say in its reader's language.
func badConfig(err error) error {
	b := &pb.BadConfig{}
	for _, p := range config.ProblemsOf(err) {
		b.Problems = append(b.Problems, &pb.ConfigProblem{Key: p.Key, Id: p.ID, Args: p.Args})
	}
	return pb.BadConfigError(b)
}

func conflict(base, head int64) error {
	return merrors.New("system.config_conflict", "the config changed since version "+strconv.FormatInt(base, 10)+" (now version "+strconv.FormatInt(head, 10)+"): review the changes again", http.StatusConflict)
}

// ConfigSchema describes every key, with its description in req.Language.
func (h *Handler) ConfigSchema(ctx context.Context, req *pb.ConfigSchemaRequest, rsp *pb.ConfigSchemaResponse) error {
	for _, k := range config.Schema() {
		rsp.Keys = append(rsp.Keys, &pb.ConfigKey{
			Key: k.Name, Type: string(k.Type), Unit: k.Unit, Choices: k.Choices,
			DefaultJson: string(k.Default), Description: i18n.T(req.Language, k.DescriptionID()),
		})
	}
	return nil
}

// ConfigHistory lists the versions kept, newest first.
func (h *Handler) ConfigHistory(ctx context.Context, req *pb.ConfigHistoryRequest, rsp *pb.ConfigHistoryResponse) error {
	versions, err := h.History.List()
	if err != nil {
		return unavailable("config history", err)
	}
	for _, v := range versions {
		pv := &pb.ConfigVersion{
			Version: v.Version, Time: v.Time.Unix(), Origin: v.Origin, ActorId: v.ActorID, ActorName: v.ActorName,
			RollbackOf: v.RollbackOf, Document: v.Document,
		}
		for _, c := range v.Changes {
			pv.Changes = append(pv.Changes, &pb.ConfigChange{Key: c.Key, Old: c.Old, New: c.New})
		}
		rsp.Versions = append(rsp.Versions, pv)
	}
	if rsp.Current, err = h.History.Head(); err != nil {
		return unavailable("config history", err)
	}
	return nil
}

// SyncConfig records the settings in force as a version when they differ
// from the latest one (or there is none): a change made at the source while
// no system service watched it, or the first start. Run at start.
func (h *Handler) SyncConfig(ctx context.Context) error {
	return h.sourceChanged(ctx, *h.Config.Current(), h.Config.Origin())
}

// ConfigChanged records a change that came from the source (an edit of the
// file, a put to etcd): a version with no user, origin the source's kind.
// It is the config center's OnChange; errors are logged by the caller of
// SyncConfig only, as a watcher has no one to tell.
func (h *Handler) ConfigChanged(_, after config.Settings) {
	_ = h.sourceChanged(context.Background(), after, h.Config.Origin())
}

func (h *Handler) sourceChanged(ctx context.Context, after config.Settings, origin string) error {
	doc, err := config.Document(after)
	if err != nil {
		return err
	}
	h.configMu.Lock()
	defer h.configMu.Unlock()
	head, err := h.History.Head()
	if err != nil {
		return err
	}
	before := config.Defaults()
	if head > 0 {
		last, err := h.History.Get(head)
		if err != nil {
			return err
		}
		if last.Document == string(doc) {
			return nil // recorded already: this instance's edit, or another's
		}
		if s, err := config.Parse([]byte(last.Document)); err == nil {
			before = s
		}
	}
	v := &Version{Origin: origin, Time: time.Now(), Document: string(doc), Changes: config.Changes(before, after)}
	if head > 0 && len(v.Changes) == 0 {
		return nil
	}
	ok, err := h.History.Append(head, v)
	if err != nil || !ok {
		return err // !ok: another instance recorded it first
	}
	if head > 0 {
		h.Audit.Record(ctx, &pb.AuditEntry{Kind: string(audit.KindConfigChange), Detail: "from " + origin + ": " + config.DiffText(v.Changes)})
	}
	return nil
}
