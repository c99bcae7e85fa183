package system

import (
	"net/http"
	"strings"

	merrors "go-micro.dev/v4/errors"
	"google.golang.org/protobuf/encoding/protojson"
)

// BadConfigError is the error of a config refused as invalid: 400
// system.bad_config with b, encoded, as its detail.
func BadConfigError(b *BadConfig) error {
	detail, err := protojson.Marshal(b)
	if err != nil { // a message of strings always marshals
		ids := make([]string, len(b.GetProblems()))
		for i, p := range b.GetProblems() {
			ids[i] = p.GetKey() + " " + p.GetId()
		}
		detail = []byte(strings.Join(ids, "; "))
	}
	return &merrors.Error{Id: "system.bad_config", Code: http.StatusBadRequest, Detail: string(detail), Status: http.StatusText(http.StatusBadRequest)}
}

// BadConfigOf returns the problems a system.bad_config error carries; ok is
// false for any other error, or a detail that is not a valid BadConfig.
func BadConfigOf(err error) (b *BadConfig, ok bool) {
	e := merrors.FromError(err)
	if e == nil || e.Id != "system.bad_config" {
		return nil, false
	}
	b = new(BadConfig)
	if protojson.Unmarshal([]byte(e.Detail), b) != nil || len(b.Problems) == 0 {
		return nil, false
	}
	return b, true
}
