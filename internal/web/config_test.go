package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"go-micro.dev/v4/client"

	pauth "github.com/portal-go/portal/internal/auth"
	"github.com/portal-go/portal/internal/config"
	"github.com/portal-go/portal/internal/i18n"
	systempb "github.com/portal-go/portal/proto/system"
)

// configSystem serves the config in force (the defaults) and refuses every
// update with the problems the document has, as the system service does.
type configSystem struct{ fakeSystem }

func (f *configSystem) GetConfig(context.Context, *systempb.GetConfigRequest, ...client.CallOption) (*systempb.ConfigResponse, error) {
	doc, err := config.Document(config.Defaults())
	return &systempb.ConfigResponse{Document: string(doc), Writable: true, Version: 1}, err
}

func (f *configSystem) ConfigHistory(context.Context, *systempb.ConfigHistoryRequest, ...client.CallOption) (*systempb.ConfigHistoryResponse, error) {
	return &systempb.ConfigHistoryResponse{Current: 1}, nil
}

func (f *configSystem) UpdateConfig(_ context.Context, in *systempb.UpdateConfigRequest, _ ...client.CallOption) (*systempb.ConfigResponse, error) {
	_, err := config.Parse([]byte(in.Document))
	b := &systempb.BadConfig{}
	for _, p := range config.ProblemsOf(err) {
		b.Problems = append(b.Problems, &systempb.ConfigProblem{Key: p.Key, Id: p.ID, Args: p.Args})
	}
	return nil, systempb.BadConfigError(b)
}

// TestConfigProblemsInChinese: a bad config form posted by a zh-CN reader
// shows each problem in Chinese beside its field, and a document the
// service refuses shows the service's problems in Chinese too.
func TestConfigProblemsInChinese(t *testing.T) {
	users := newFakeUsers()
	users.info.Roles = []string{pauth.RoleUser, pauth.RoleAdmin}
	g := newGateway(t, settings(), users)
	g.System = &configSystem{}
	zh := func(r *http.Request) *http.Request {
		r.AddCookie(&http.Cookie{Name: langCookie, Value: i18n.Chinese})
		return r
	}
	want := config.Problem{Key: "login.maxFailures", ID: "config.problem.range", Args: map[string]string{"Value": "0", "Max": "1000"}}.Text(i18n.Chinese)
	if !strings.Contains(want, "应介于") {
		t.Fatalf("the Chinese text is %q", want)
	}

	form := url.Values{"from": {"form"}}
	for _, k := range config.Schema() {
		form.Set(k.Name, config.FormValue(config.Defaults(), k.Name))
	}
	form.Set("login.maxFailures", "0")
	w := serve(g, zh(signedInPost(t, "/admin/config", form)))
	body := w.Body.String()
	i := strings.Index(body, `id="login-maxFailures-error"`)
	if w.Code != http.StatusBadRequest || i < 0 || !strings.Contains(body[i:], want) || strings.Contains(body, "must be between") {
		t.Fatalf("form: %d, want 400 and %q beside login.maxFailures: %.3000s", w.Code, want, body)
	}

	doc := url.Values{"yaml": {"login:\n  maxFailures: 0\n"}, confirmField: {"yes"}}
	w = serve(g, zh(signedInPost(t, "/admin/config", doc)))
	if body := w.Body.String(); w.Code != http.StatusBadRequest || !strings.Contains(body, want) || strings.Contains(body, "must be between") {
		t.Fatalf("refused document: %d, want 400 and %q: %.3000s", w.Code, want, body)
	}
}
