package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	gyaml "github.com/ghodss/yaml"

	"github.com/portal-go/portal/internal/datadir"
)

// ErrReadOnly: the center's source cannot be written (built-in settings).
var ErrReadOnly = errors.New("config: the source cannot be written")

// maxDocument bounds an edited document.
const maxDocument = 64 << 10

// Parse reads a complete yaml document strictly: unknown keys (a typo such as
// auth.expiretime) and values of the wrong type are errors, keys left out
// keep their built-in defaults, and the result must validate. An admin's
// edit goes through it; a file's or etcd's document goes through decode, the
// same parser, after go-micro's reader has turned it into JSON.
func Parse(doc []byte) (Settings, error) {
	if len(doc) > maxDocument {
		return Settings{}, problem("", probTooLarge, "Max", maxDocument)
	}
	js, err := gyaml.YAMLToJSON(doc)
	if err != nil {
		return Settings{}, problem("", probDocument, "Detail", err)
	}
	return decode(js)
}

// decode reads a JSON document over the defaults, strictly (as Parse says),
// and validates the result. Every source's document goes through it.
func decode(js []byte) (Settings, error) {
	s := Defaults()
	if len(js) > 0 && string(js) != "null" {
		if err := knownKeys(js); err != nil {
			return Settings{}, err
		}
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			return Settings{}, typeError(err)
		}
	}
	return s, s.Validate()
}

// knownKeys refuses a document with a key that is not a setting, compared
// with its case: encoding/json would take "expiretime" for "expireTime".
func knownKeys(js []byte) error {
	var doc map[string]any
	sections := map[string]bool{}
	var names []string
	for _, k := range schema {
		if !sections[k.Section()] {
			names = append(names, k.Section())
		}
		sections[k.Section()] = true
	}
	if err := json.Unmarshal(js, &doc); err != nil {
		return problem("", probNotMapping, "Sections", strings.Join(names, ", "))
	}
	var errs []error
	for sec, v := range doc {
		kv, ok := v.(map[string]any)
		if !sections[sec] || !ok {
			errs = append(errs, problem("", probUnknownSection, "Name", quote(sec), "Sections", strings.Join(names, ", ")))
			continue
		}
		for k := range kv {
			if !slices.ContainsFunc(schema, func(key Key) bool { return key.Name == sec+"."+k }) {
				errs = append(errs, problem("", probUnknownKey, "Name", sec+"."+k))
			}
		}
	}
	return errors.Join(errs...)
}

// typeError says which key holds a value of the wrong type, in words.
func typeError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		for _, k := range schema {
			if strings.EqualFold(k.Name, te.Field) || strings.HasPrefix(te.Field, k.Name+".") {
				return problem(k.Name, typeProblem(k.Type), "Value", "a "+te.Value)
			}
		}
	}
	return problem("", probDocument, "Detail", err)
}

// flatten maps each setting's key ("auth.expireTime") to its value as JSON.
func flatten(s Settings) map[string]string {
	js, _ := json.Marshal(s)
	var m map[string]map[string]any
	_ = json.Unmarshal(js, &m)
	out := map[string]string{}
	for sec, kv := range m {
		for k, v := range kv {
			vj, _ := json.Marshal(v)
			out[sec+"."+k] = string(vj)
		}
	}
	return out
}

// Document renders settings as the yaml document a source holds.
func Document(s Settings) ([]byte, error) {
	return gyaml.Marshal(s)
}

// Writable reports whether Update can write the source.
func (c *Center) Writable() bool { return c.write != nil }

// Update parses and validates doc, writes it to the source (the file, or
// etcd) and puts it in force here at once; every other process watching the
// source follows within moments. It returns the settings now in force and
// what they were.
func (c *Center) Update(doc []byte) (now, before Settings, err error) {
	if c.write == nil {
		return Settings{}, Settings{}, ErrReadOnly
	}
	s, err := Parse(doc)
	if err != nil {
		return Settings{}, Settings{}, err
	}
	out, err := Document(s)
	if err != nil {
		return Settings{}, Settings{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	before = *c.cur.Load()
	if err := c.write(out); err != nil {
		return Settings{}, Settings{}, fmt.Errorf("config: write %s: %w", c.source, err)
	}
	c.edits++
	c.cur.Store(&s)
	if c.log != nil {
		c.log.Info("config written", "source", c.source)
	}
	return s, before, nil
}

// writeFile replaces the file atomically and durably (a reader, or the
// process after a crash, never sees it half written) and, the first time it creates it, starts watching it. Called
// with c.mu held.
func (c *Center) writeFile(doc []byte) error {
	if err := datadir.WriteFile(c.path, doc, 0o644); err != nil {
		return err
	}
	if c.src != nil || c.closed {
		return nil
	}
	// The first edit created the file: from now on it is the source.
	c.source = c.path
	return c.attach(fileSource(c.path), false)
}

// Diff names what changed from a to b, key by key, for the audit log:
// "auth.expireTime: 900 -> 600; auth.whiteList: [...] -> [...]".
func Diff(a, b Settings) string { return DiffText(Changes(a, b)) }

// DiffText is changes as Diff says them.
func DiffText(changes []Change) string {
	var parts []string
	for _, c := range changes {
		parts = append(parts, c.Key+": "+c.Old+" -> "+c.New)
	}
	if len(parts) == 0 {
		return "no change"
	}
	return strings.Join(parts, "; ")
}

// LegacyFile is the config file of the working directory, used when present.
const LegacyFile = "portal.yaml"

// FileIn is the config file to use when none was named: ./portal.yaml when
// it exists (where earlier versions looked), else portal.yaml in dataDir, so
// that the first edit through the admin page writes under the data dir, not
// into whatever directory Portal was started from (a source checkout).
func FileIn(named, dataDir string) string {
	if named != "" {
		return named
	}
	if _, err := os.Stat(LegacyFile); err == nil {
		return LegacyFile
	}
	return filepath.Join(dataDir, LegacyFile)
}
