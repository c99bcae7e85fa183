package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// The settings describe themselves: each key's name is its field's json tag
// under its section's, its type the field's Go type (with the tags unit:"s"
// for a duration in seconds and choices:"a b" for a closed set), its default
// the field's value in Defaults, its rules Validate's, and its description
// the message "config.key.<name>" of internal/i18n. Schema reads all of that
// from Settings itself, so a key's facts are written once.

// Type is the kind of value a key holds, which picks its form input.
type Type string

// The types of key.
const (
	TypeInteger  Type = "integer"  // a whole number
	TypeDuration Type = "duration" // a whole number of Unit (seconds)
	TypeBoolean  Type = "boolean"
	TypeList     Type = "list" // a list of strings
	TypeString   Type = "string"
	TypeChoice   Type = "choice" // one of Choices
)

// Key describes one setting.
type Key struct {
	// Name is the key as yaml spells it: "auth.expireTime".
	Name string `json:"key"`
	Type Type   `json:"type"`
	// Unit is a duration's unit ("s"), else "".
	Unit string `json:"unit,omitempty"`
	// Choices are the values a choice may take.
	Choices []string `json:"choices,omitempty"`
	// Default is the built-in value, as JSON.
	Default json.RawMessage `json:"default"`
}

// DescriptionID is the i18n message id of the key's description.
func (k Key) DescriptionID() string { return "config.key." + k.Name }

// Section is the key's section: "auth" of "auth.expireTime".
func (k Key) Section() string { s, _, _ := strings.Cut(k.Name, "."); return s }

// schema is every key, in Settings' order; built once from the types.
var schema = buildSchema()

// Schema returns every key, in the order of Settings' fields.
func Schema() []Key { return schema }

func keyNamed(name string) Key {
	for _, k := range schema {
		if k.Name == name {
			return k
		}
	}
	panic("config: no key " + name)
}

// field is one setting's place in a Settings value.
type field struct {
	key string
	sf  reflect.StructField
	v   reflect.Value
}

// fieldsOf lists the settings of *s, in order, addressable.
func fieldsOf(s *Settings) []field {
	var out []field
	root := reflect.ValueOf(s).Elem()
	for i := range root.NumField() {
		sec, sv := root.Type().Field(i), root.Field(i)
		for j := range sv.NumField() {
			f := sv.Type().Field(j)
			out = append(out, field{key: tagName(sec) + "." + tagName(f), sf: f, v: sv.Field(j)})
		}
	}
	return out
}

func tagName(f reflect.StructField) string {
	n, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	return n
}

func buildSchema() []Key {
	d := Defaults()
	var out []Key
	for _, f := range fieldsOf(&d) {
		def, err := json.Marshal(f.v.Interface())
		if err != nil {
			panic(err)
		}
		k := Key{Name: f.key, Default: def, Unit: f.sf.Tag.Get("unit")}
		switch f.v.Kind() {
		case reflect.Int:
			k.Type = TypeInteger
			if k.Unit != "" {
				k.Type = TypeDuration
			}
		case reflect.Bool:
			k.Type = TypeBoolean
		case reflect.Slice:
			k.Type = TypeList
		case reflect.String:
			k.Type = TypeString
			if c := f.sf.Tag.Get("choices"); c != "" {
				k.Type, k.Choices = TypeChoice, strings.Fields(c)
			}
		default:
			panic("config: no schema type for " + f.key)
		}
		out = append(out, k)
	}
	return out
}

// typeProblem is the problem of a value that is not of type t.
func typeProblem(t Type) string {
	switch t {
	case TypeInteger, TypeDuration:
		return probTypeInteger
	case TypeBoolean:
		return probTypeBoolean
	case TypeList:
		return probTypeList
	}
	return probTypeString
}

// FormValue is the text a form shows for the key name in s: a number, "true"
// or "false", a list one entry per line, or the string.
func FormValue(s Settings, name string) string {
	for _, f := range fieldsOf(&s) {
		if f.key != name {
			continue
		}
		switch v := f.v.Interface().(type) {
		case []string:
			return strings.Join(v, "\n")
		default:
			return fmt.Sprint(v)
		}
	}
	return ""
}

// FromForm reads settings from a form with one field per key (named by the
// key; get reports a field's value and whether it was sent): numbers as
// decimal text, a boolean as a checkbox (sent: true, absent: false), a list
// one entry per line. Every problem is reported at once, each wrapping
// ErrInvalid and starting with its key, the values that could be read
// validated too.
func FromForm(get func(name string) (string, bool)) (Settings, error) {
	s := Defaults()
	var errs []error
	bad := map[string]bool{}
	for _, f := range fieldsOf(&s) {
		raw, sent := get(f.key)
		switch f.v.Kind() {
		case reflect.Int:
			n, err := strconv.Atoi(strings.TrimSpace(raw))
			if err != nil {
				errs = append(errs, problem(f.key, probTypeInteger, "Value", quote(raw)))
				bad[f.key] = true
				continue
			}
			f.v.SetInt(int64(n))
		case reflect.Bool:
			f.v.SetBool(sent && raw != "" && raw != "false")
		case reflect.Slice:
			list := []string{}
			for _, line := range strings.Split(raw, "\n") {
				if line = strings.TrimSpace(line); line != "" {
					list = append(list, line)
				}
			}
			f.v.Set(reflect.ValueOf(list))
		case reflect.String:
			f.v.SetString(strings.TrimSpace(raw))
		}
	}
	if err := s.Validate(); err != nil {
		// A rule about a key that could not be read would only repeat it.
		for _, p := range ProblemsOf(err) {
			if !bad[p.Key] {
				errs = append(errs, p)
			}
		}
	}
	return s, errors.Join(errs...)
}

// unjoin lists the errors errors.Join made err of (err itself otherwise).
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// Change is one key's change between two settings, each value as JSON.
type Change struct {
	Key string `json:"key"`
	Old string `json:"old"`
	New string `json:"new"`
}

// Changes lists the keys whose values differ from a to b, in schema order.
func Changes(a, b Settings) []Change {
	fa, fb := flatten(a), flatten(b)
	var out []Change
	for _, k := range schema {
		if fa[k.Name] != fb[k.Name] {
			out = append(out, Change{k.Name, fa[k.Name], fb[k.Name]})
		}
	}
	return out
}
