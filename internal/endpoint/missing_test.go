package endpoint

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestMissing(t *testing.T) {
	type inner struct {
		Code string `json:"code" required:"true"`
	}
	type body struct {
		inner
		Name     string          `json:"name,omitempty" required:"true"`
		Answer   json.RawMessage `json:"answer" required:"true"`
		Optional string          `json:"optional"`
	}
	for name, c := range map[string]struct {
		in   body
		want []string
	}{
		"all sent":       {body{inner{"1"}, "n", json.RawMessage(`{}`), ""}, nil},
		"nothing sent":   {body{}, []string{"code", "name", "answer"}},
		"null answer":    {body{inner{"1"}, "n", json.RawMessage(`null`), "x"}, []string{"answer"}},
		"embedded empty": {body{inner{""}, "n", json.RawMessage(`1`), ""}, []string{"code"}},
	} {
		if got := Missing(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: Missing = %q, want %q", name, got, c.want)
		}
	}
}
