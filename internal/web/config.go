package web

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	merrors "go-micro.dev/v4/errors"

	"github.com/portal-go/portal/internal/config"
	systempb "github.com/portal-go/portal/proto/system"
)

// The config page: a form made from the config's schema (one field per key,
// with its description, default and unit), the yaml document beside it for
// those who prefer it, and the history of changes with a rollback per
// version. Saving goes through a page of the changes to confirm; the version
// the form was made from travels with it, so that an edit made meanwhile by
// someone else is a conflict, not silently overwritten.

// configField is one key's field on the config page.
type configField struct {
	config.Key
	// ID is the field's HTML id ("auth-expireTime").
	ID, Description string
	// Value is the field's text (for a boolean: "true" or "false").
	Value string
	// Default is the default as the field would show it.
	Default string
	// Problems are what is wrong with the posted value.
	Problems []string
}

// configView is what the config page shows besides the fields.
type configView struct {
	status int
	// values gives the fields' values: the posted form's, or nil for the
	// config in force. With the posted form's, the problems about a key
	// are shown beside its field; else all beside the document.
	values func(key string) string
	// doc is the yaml textarea's text ("": the config in force).
	doc string
	// problems are the posted form's or document's; general, one not
	// about a field (the document's yaml, a conflict).
	problems []config.Problem
	general  string
}

func fieldID(key string) string { return strings.ReplaceAll(key, ".", "-") }

// renderConfig shows the config page.
func (g *Gateway) renderConfig(c *gin.Context, v configView) {
	ctx := rpcContext(c)
	cur, err := g.System.GetConfig(ctx, &systempb.GetConfigRequest{})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	hist, err := g.System.ConfigHistory(ctx, &systempb.ConfigHistoryRequest{})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	inForce, err := config.Parse([]byte(cur.Document))
	if err != nil {
		g.fail(c, http.StatusInternalServerError, codeInternal, "the config in force does not parse: "+err.Error())
		return
	}
	posted := v.values != nil
	if !posted {
		v.values = func(key string) string { return config.FormValue(inForce, key) }
	}
	if v.doc == "" {
		v.doc = cur.Document
	}
	byKey := map[string][]string{}
	var docProblems []string
	for _, p := range v.problems {
		if text := p.Text(langOf(c)); p.Key != "" && posted {
			byKey[p.Key] = append(byKey[p.Key], text)
		} else {
			docProblems = append(docProblems, text)
		}
	}
	defaults := config.Defaults()
	var fields []configField
	for _, k := range config.Schema() {
		fields = append(fields, configField{
			Key: k, ID: fieldID(k.Name), Description: tr(c, k.DescriptionID()),
			Value: v.values(k.Name), Default: strings.ReplaceAll(config.FormValue(defaults, k.Name), "\n", ", "), Problems: byKey[k.Name],
		})
	}
	data := gin.H{"Config": cur, "Doc": v.doc, "Fields": fields, "History": hist.Versions, "Current": hist.Current,
		"DocProblems": docProblems, "General": v.general}
	if n := len(v.problems); n > 0 {
		data["Summary"] = tr(c, "config.problems", "Count", n)
	}
	status := v.status
	if status == 0 {
		status = http.StatusOK
	}
	g.page(c, status, "admin_config.html", data)
}

func (g *Gateway) configPage(c *gin.Context) { g.renderConfig(c, configView{}) }

// postedValue reads a key's field of the posted form.
func postedValue(c *gin.Context) func(string) (string, bool) {
	return func(key string) (string, bool) { return c.GetPostForm(key) }
}

// postedForm gives the posted form's field values when the form (not the
// document) was reviewed, else nil.
func postedForm(c *gin.Context) func(string) string {
	if c.PostForm("from") != "form" {
		return nil
	}
	return func(key string) string { return c.PostForm(key) }
}

// baseVersion is the posted version the form was made from (nil: none).
func baseVersion(c *gin.Context) *int64 {
	n, err := strconv.ParseInt(c.PostForm("version"), 10, 64)
	if err != nil {
		return nil
	}
	return &n
}

// configForm saves the config in two steps: the posted form (or, with
// from=yaml, the document) is checked, every problem shown beside its field
// at once, and its changes shown for confirmation; the confirmed post saves
// it, then redirects.
func (g *Gateway) configForm(c *gin.Context) {
	if c.PostForm(confirmField) == "yes" {
		doc := c.PostForm("yaml")
		_, err := g.System.UpdateConfig(rpcContext(c), &systempb.UpdateConfigRequest{Document: doc, BaseVersion: baseVersion(c)})
		if err != nil {
			g.configRefused(c, err, configView{doc: doc})
			return
		}
		back(c, "/admin/config", "config")
		return
	}
	var next config.Settings
	var err error
	doc := c.PostForm("yaml")
	if c.PostForm("from") == "yaml" {
		next, err = config.Parse([]byte(doc))
	} else {
		next, err = config.FromForm(postedValue(c))
	}
	if err != nil {
		g.renderConfig(c, configView{status: http.StatusBadRequest, doc: doc, values: postedForm(c), problems: config.ProblemsOf(err)})
		return
	}
	out, err := config.Document(next)
	if err != nil {
		g.fail(c, http.StatusInternalServerError, codeInternal, err.Error())
		return
	}
	g.confirmConfig(c, next, confirmation{
		Title: tr(c, "confirm.config.title"), What: tr(c, "confirm.config.what"), Button: tr(c, "confirm.config.button"),
		Fields: []formField{{"yaml", string(out)}, {"version", c.PostForm("version")}},
	})
}

// confirmConfig asks to confirm the change from the config in force to
// next: one line per key, old -> new. A form made from an older version
// than the one in force is sent back to the config page (409) instead.
func (g *Gateway) confirmConfig(c *gin.Context, next config.Settings, cf confirmation) {
	cur, err := g.System.GetConfig(rpcContext(c), &systempb.GetConfigRequest{})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	if base := baseVersion(c); base != nil && *base != cur.Version {
		g.configRefused(c, merrors.New("system.config_conflict", "changed meanwhile", http.StatusConflict), configView{
			doc: c.PostForm("yaml"), values: postedForm(c),
		})
		return
	}
	inForce, err := config.Parse([]byte(cur.Document))
	if err != nil {
		g.fail(c, http.StatusInternalServerError, codeInternal, "the config in force does not parse: "+err.Error())
		return
	}
	for _, ch := range config.Changes(inForce, next) {
		cf.Lines = append(cf.Lines, ch.Key+": "+ch.Old+" → "+ch.New)
	}
	if len(cf.Lines) == 0 {
		cf.Lines = []string{tr(c, "confirm.config.none")}
	}
	cf.Cancel = "/admin/config"
	g.askConfirm(c, cf)
}

// configRefused shows the config page again after the service refused a
// change: the posted text kept, to be mended, and why beside it. A conflict
// says so and shows the current version (the form now made from it); a
// server's error is an error page.
func (g *Gateway) configRefused(c *gin.Context, err error, v configView) {
	status, code, detail, _ := rpcStatus(c, err)
	switch {
	case status >= 500 || status == http.StatusNotFound || status == http.StatusForbidden || status == http.StatusUnauthorized:
		g.abortRPC(c, err)
		return
	case code == "system.config_conflict":
		v.general = tr(c, "error.system.config_conflict")
	case code == "system.bad_config":
		v.problems = configProblems(err, detail)
	default:
		v.general = errorMessage(c, code, detail)
	}
	v.status = status
	g.renderConfig(c, v)
}

// configProblems are the problems a system.bad_config error carries (one
// about the document, detail, if it carries none).
func configProblems(err error, detail string) []config.Problem {
	b, ok := systempb.BadConfigOf(err)
	if !ok {
		return config.ProblemsOf(errors.New(detail))
	}
	out := make([]config.Problem, len(b.Problems))
	for i, p := range b.Problems {
		out[i] = config.Problem{Key: p.Key, ID: p.Id, Args: p.Args}
	}
	return out
}

// configProblemsText is every problem a system.bad_config error carries, in
// the request's language, for an error message.
func configProblemsText(c *gin.Context, err error, detail string) string {
	ps := configProblems(err, detail)
	texts := make([]string, len(ps))
	for i, p := range ps {
		texts[i] = p.Text(langOf(c))
	}
	return strings.Join(texts, "; ")
}

// rollbackForm puts a past version back, after a page that names what will
// change; the confirmed post goes through the service's rollback (the same
// checks as an edit, audited as a rollback).
func (g *Gateway) rollbackForm(c *gin.Context) {
	version, err := strconv.ParseInt(c.PostForm("to"), 10, 64)
	if err != nil || version < 1 {
		g.fail(c, http.StatusBadRequest, codeBadForm, "to must be a version number")
		return
	}
	ctx := rpcContext(c)
	if c.PostForm(confirmField) == "yes" {
		if _, err := g.System.RollbackConfig(ctx, &systempb.RollbackConfigRequest{Version: version, BaseVersion: baseVersion(c)}); err != nil {
			g.configRefused(c, err, configView{})
			return
		}
		back(c, "/admin/config", "config_rollback")
		return
	}
	hist, err := g.System.ConfigHistory(ctx, &systempb.ConfigHistoryRequest{})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	for _, v := range hist.Versions {
		if v.Version != version {
			continue
		}
		next, err := config.Parse([]byte(v.Document))
		if err != nil {
			g.fail(c, http.StatusInternalServerError, codeInternal, "version "+c.PostForm("to")+" does not parse: "+err.Error())
			return
		}
		g.confirmConfig(c, next, confirmation{
			Title: tr(c, "confirm.rollback.title", "Version", version), What: tr(c, "confirm.rollback.what", "Version", version),
			Button: tr(c, "confirm.rollback.button"), Fields: []formField{{"to", c.PostForm("to")}, {"version", c.PostForm("version")}},
		})
		return
	}
	g.fail(c, http.StatusNotFound, "system.config_version_unknown", "the config history has no version "+c.PostForm("to"))
}
