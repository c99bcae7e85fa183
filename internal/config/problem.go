package config

import (
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/portal-go/portal/internal/i18n"
)

// Problem is one thing wrong with a config: the key it is about ("" for the
// document as a whole), the i18n message that says it
// ("config.problem.<kind>", its {{.Key}} the key) and the values of the
// message's other placeholders. Its Error is the English text, wrapping
// ErrInvalid; a page or an API error says it in its reader's language.
type Problem struct {
	Key  string
	ID   string
	Args map[string]string
}

// The kinds of problem, each a message of internal/i18n.
const (
	probMinSeconds     = "config.problem.min_seconds"
	probRefresh        = "config.problem.refresh"
	probSessionMaxAge  = "config.problem.session_max_age"
	probWhiteList      = "config.problem.white_list"
	probRange          = "config.problem.range"
	probAddressFails   = "config.problem.address_max_failures"
	probAccountFails   = "config.problem.account_max_failures"
	probPublicURL      = "config.problem.public_url"
	probChoice         = "config.problem.choice"
	probTypeInteger    = "config.problem.type_integer"
	probTypeBoolean    = "config.problem.type_boolean"
	probTypeList       = "config.problem.type_list"
	probTypeString     = "config.problem.type_string"
	probTooLarge       = "config.problem.too_large"
	probNotMapping     = "config.problem.not_mapping"
	probUnknownSection = "config.problem.unknown_section"
	probUnknownKey     = "config.problem.unknown_key"
	probDocument       = "config.problem.document"
)

// ProblemIDs lists every kind of problem's message id.
func ProblemIDs() []string {
	return []string{probMinSeconds, probRefresh, probSessionMaxAge, probWhiteList, probRange, probAddressFails,
		probAccountFails, probPublicURL, probChoice, probTypeInteger, probTypeBoolean, probTypeList, probTypeString,
		probTooLarge, probNotMapping, probUnknownSection, probUnknownKey, probDocument}
}

// problem makes a Problem about key; args are pairs of placeholder name and
// value (a value printed with fmt.Sprint).
func problem(key, id string, args ...any) Problem {
	p := Problem{Key: key, ID: id, Args: map[string]string{}}
	for i := 0; i+1 < len(args); i += 2 {
		p.Args[fmt.Sprint(args[i])] = fmt.Sprint(args[i+1])
	}
	return p
}

// quote is a value as a problem names it: in double quotes, escaped.
func quote(s string) string { return strconv.Quote(s) }

// Text is the problem in lang.
func (p Problem) Text(lang string) string {
	names := make([]string, 0, len(p.Args))
	for n := range p.Args {
		names = append(names, n)
	}
	sort.Strings(names)
	args := []any{"Key", p.Key}
	for _, n := range names {
		args = append(args, n, p.Args[n])
	}
	return i18n.T(lang, p.ID, args...)
}

// Error is the problem in English, after "config: invalid: ".
func (p Problem) Error() string { return ErrInvalid.Error() + ": " + p.Text(i18n.English) }

// Unwrap makes every problem an ErrInvalid.
func (p Problem) Unwrap() error { return ErrInvalid }

// ProblemsOf lists the problems of an error from Parse, FromForm or
// Validate, in order; any other error is one problem about the document,
// its text the detail.
func ProblemsOf(err error) []Problem {
	if err == nil {
		return nil
	}
	var out []Problem
	for _, e := range unjoin(err) {
		var p Problem
		if errors.As(e, &p) {
			out = append(out, p)
		} else {
			out = append(out, problem("", probDocument, "Detail", e.Error()))
		}
	}
	return out
}
