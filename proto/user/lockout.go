package user

import (
	"net/http"

	merrors "go-micro.dev/v4/errors"
	"google.golang.org/protobuf/encoding/protojson"
)

// LockoutError is the error of a login refused while an account or client
// is locked out: 429 id with l, encoded, as its detail.
func LockoutError(id string, l *Lockout) error {
	detail, err := protojson.Marshal(l)
	if err != nil { // a message of a string and an int always marshals
		detail = []byte(l.GetMessage())
	}
	return &merrors.Error{Id: id, Code: http.StatusTooManyRequests, Detail: string(detail), Status: http.StatusText(http.StatusTooManyRequests)}
}

// LockoutOf returns the Lockout a 429 from the user service carries; ok is
// false for any other error, or a detail that is not a valid Lockout.
func LockoutOf(err error) (l *Lockout, ok bool) {
	e := merrors.FromError(err)
	if e == nil || e.Code != http.StatusTooManyRequests {
		return nil, false
	}
	l = new(Lockout)
	if protojson.Unmarshal([]byte(e.Detail), l) != nil || l.RetryAfterSeconds < 1 {
		return nil, false
	}
	return l, true
}
