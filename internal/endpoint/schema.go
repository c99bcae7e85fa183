package endpoint

import (
	"encoding/json"
	"reflect"
	"regexp"
	"strconv"
	"strings"
)

// Schemas makes the JSON Schemas (JSON Schema 2020-12, as OpenAPI 3.1 uses
// them) of Go types, as encoding/json writes and reads them: a struct's
// fields under their json names, embedded structs flattened, a field without
// omitempty required in what the gateway writes, a Permission one of the
// catalogue's. Named struct types become components, referred to by $ref. A
// struct tag adds what the Go type cannot say: `required:"true"` on a
// request field the handler insists on.
type Schemas struct {
	// Components are the named schemas, for #/components/schemas.
	Components map[string]any
	names      map[schemaKey]string
}

// mode is how a type is read or written.
type mode int

const (
	// written by encoding/json: a field without omitempty is always there.
	written mode = iota
	// written through Present: every field is there.
	presented
	// read from a request: a field is required only when tagged so.
	read
)

type schemaKey struct {
	t reflect.Type
	m mode
}

// NewSchemas starts an empty set of components.
func NewSchemas() *Schemas {
	return &Schemas{Components: map[string]any{}, names: map[schemaKey]string{}}
}

// Response is the schema of t as the gateway writes it.
func (s *Schemas) Response(t reflect.Type) map[string]any { return s.of(t, written) }

// Request is the schema of t as a request body decoded into it.
func (s *Schemas) Request(t reflect.Type) map[string]any { return s.of(t, read) }

// presenter is Presented[T], whatever T.
type presenter interface{ presentedType() reflect.Type }

var (
	presenterType  = reflect.TypeFor[presenter]()
	rawMessageType = reflect.TypeFor[json.RawMessage]()
	permissionType = reflect.TypeFor[Permission]()
	marshalerType  = reflect.TypeFor[json.Marshaler]()
)

func (s *Schemas) of(t reflect.Type, m mode) map[string]any {
	switch {
	case t.Implements(presenterType):
		return s.of(reflect.Zero(t).Interface().(presenter).presentedType(), presented)
	case t == permissionType:
		var names []any
		for _, p := range All() {
			names = append(names, p)
		}
		return map[string]any{"type": "string", "enum": names}
	case t == rawMessageType:
		return map[string]any{"description": "any JSON value"}
	case t.Implements(marshalerType):
		return map[string]any{}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return s.of(t.Elem(), m)
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int32:
		return map[string]any{"type": "integer", "format": "int32"}
	case reflect.Int64:
		return map[string]any{"type": "integer", "format": "int64"}
	case reflect.Int, reflect.Int8, reflect.Int16:
		return map[string]any{"type": "integer"}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer", "minimum": 0}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "contentEncoding": "base64"}
		}
		return map[string]any{"type": "array", "items": s.of(t.Elem(), m)}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": s.of(t.Elem(), m)}
	case reflect.Struct:
		return s.object(t, m)
	}
	return map[string]any{} // an interface: any JSON value
}

// object is a struct's schema: a $ref to its component when it is named.
func (s *Schemas) object(t reflect.Type, m mode) map[string]any {
	if t.Name() == "" {
		return s.fields(t, m)
	}
	key := schemaKey{t, m}
	name, ok := s.names[key]
	if !ok {
		name = s.name(t, m)
		s.names[key] = name
		s.Components[name] = map[string]any{} // for a type that holds itself
		s.Components[name] = s.fields(t, m)
	}
	return map[string]any{"$ref": "#/components/schemas/" + name}
}

var notInName = regexp.MustCompile(`[^A-Za-z0-9_]+`)

// name is a component name for t not yet taken: its type's name,
// capitalised; for the same type read or written another way, with what it
// is for ("Input", "Full"); for another type of that name, with its
// package's (and a number, if need be).
func (s *Schemas) name(t reflect.Type, m mode) string {
	name := upperFirst(notInName.ReplaceAllString(t.Name(), "_"))
	for key := range s.names {
		if key.t == t {
			name += map[mode]string{written: "Sparse", presented: "Full", read: "Input"}[m]
			break
		}
	}
	if _, taken := s.Components[name]; taken {
		pkg := t.PkgPath()
		name = upperFirst(notInName.ReplaceAllString(pkg[strings.LastIndexByte(pkg, '/')+1:], "_")) + name
	}
	for i, base := 2, name; ; i++ {
		if _, taken := s.Components[name]; !taken {
			return name
		}
		name = base + strconv.Itoa(i)
	}
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// unixTime are the names of int64 fields that hold a time.
var unixTime = regexp.MustCompile(`(^|_)(at|time|hour|until|given|created|last_seen|last_used)$`)

// fields is a struct's properties and which are required.
func (s *Schemas) fields(t reflect.Type, m mode) map[string]any {
	props := map[string]any{}
	required := []any{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			name, opts, _ := strings.Cut(tag, ",")
			if name == "-" && opts == "" {
				continue
			}
			if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
				walk(f.Type)
				continue
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			omitempty := strings.Contains(","+opts+",", ",omitempty,")
			p := s.of(f.Type, m)
			if _, isRef := p["$ref"]; !isRef {
				if f.Type.Kind() == reflect.Int64 && unixTime.MatchString(name) {
					p["description"] = "Unix time, seconds"
				}
			}
			if f.Type.Kind() == reflect.Pointer && m != read && (m == presented || !omitempty) {
				p = map[string]any{"anyOf": []any{p, map[string]any{"type": "null"}}}
			}
			props[name] = p
			if m == presented || (m == written && !omitempty) || (m == read && f.Tag.Get("required") == "true") {
				required = append(required, name)
			}
		}
	}
	walk(t)
	return map[string]any{"type": "object", "properties": props, "required": required, "additionalProperties": false}
}

// Missing names, by their json names, the fields of the request body v (a
// struct, embedded structs flattened as in the schema) that are tagged
// `required:"true"` and were not sent or were sent empty: an empty string,
// or an absent or null JSON value. The schema of a read body lists the same
// fields as required.
func Missing(v any) []string {
	var missing []string
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		for i := range v.NumField() {
			f := v.Type().Field(i)
			switch {
			case f.Anonymous && f.Type.Kind() == reflect.Struct:
				walk(v.Field(i))
			case f.Tag.Get("required") == "true" && unsent(v.Field(i)):
				name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
				missing = append(missing, name)
			}
		}
	}
	walk(reflect.ValueOf(v))
	return missing
}

// unsent is a required field's value that was not sent.
func unsent(v reflect.Value) bool {
	if raw, ok := v.Interface().(json.RawMessage); ok {
		return len(raw) == 0 || string(raw) == "null"
	}
	return v.String() == ""
}
