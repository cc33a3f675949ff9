package policy

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v2"
)

// Error is one problem with one object of a policy file. It names the file,
// the line (and column) of the field, the object and the field.
type Error struct {
	File string
	// Line is where the field is written, 1-based: its key, or the nearest
	// enclosing field that is written when it is left out; the first line of
	// the object for a problem of the whole object; 0 if unknown.
	Line   int
	Column int // of the field on Line, 1-based; 0 if unknown
	Kind   string
	Name   string
	Field  string // dotted path, e.g. spec.capacity.max
	Err    error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	b.WriteString(": ")
	if e.Kind != "" || e.Name != "" {
		kind := e.Kind
		if kind == "" {
			kind = "object"
		}
		if e.Name != "" {
			fmt.Fprintf(&b, "%s %q: ", kind, e.Name)
		} else {
			fmt.Fprintf(&b, "%s: ", kind)
		}
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Set is the valid content of one or more policy files.
type Set struct {
	Policies    []*ForecastPolicy
	DataSources map[string]*DataSource
}

// LoadFile reads and validates a policy file. The returned Set holds every
// valid object; each invalid one is reported in errs and left out, so a bad
// policy never takes the good ones down. A file that cannot be read at all
// yields a nil Set.
func LoadFile(path string) (*Set, []error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, []error{fmt.Errorf("read policy file: %w", err)}
	}
	return Parse(data, path)
}

// LoadFiles loads several files into one Set; names must be unique across them.
func LoadFiles(paths ...string) (*Set, []error) {
	var docs []document
	var errs []error
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("read policy file: %w", err))
			continue
		}
		docs = append(docs, splitDocuments(data, p)...)
	}
	if len(docs) == 0 && len(errs) > 0 {
		return nil, errs
	}
	set, perrs := parseDocuments(docs)
	return set, append(errs, perrs...)
}

// Parse decodes a YAML stream of ForecastPolicy and DataSource objects,
// strictly (unknown fields are errors), and validates them. file names the
// source in error messages.
func Parse(data []byte, file string) (*Set, []error) {
	return parseDocuments(splitDocuments(data, file))
}

type document struct {
	file string
	line int
	data []byte
}

var docSeparator = regexp.MustCompile(`^---(\s.*)?$`)

// splitDocuments splits a YAML stream at its "---" lines, remembering where
// each document starts so errors can point at it.
func splitDocuments(data []byte, file string) []document {
	var docs []document
	lines := bytes.SplitAfter(data, []byte("\n"))
	start, begin := 1, 0
	var cur [][]byte
	flush := func() {
		body := bytes.Join(cur, nil)
		if len(bytes.TrimSpace(stripComments(body))) > 0 {
			docs = append(docs, document{file: file, line: start + begin, data: body})
		}
		cur = nil
	}
	for i, l := range lines {
		if docSeparator.Match(bytes.TrimRight(l, "\r\n")) {
			flush()
			start, begin = i+2, 0
			continue
		}
		if len(cur) == 0 {
			// Point at the first line with content, not at blank lines or comments.
			if t := bytes.TrimSpace(l); len(t) == 0 || t[0] == '#' {
				begin++
				continue
			}
		}
		cur = append(cur, l)
	}
	flush()
	return docs
}

func stripComments(b []byte) []byte {
	var out []byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			out = append(out, t...)
		}
	}
	return out
}

func parseDocuments(docs []document) (*Set, []error) {
	set := &Set{DataSources: map[string]*DataSource{}}
	var errs []error
	var policies []*ForecastPolicy
	policyLoc := map[*ForecastPolicy]*docErrors{}
	seen := map[string]document{}

	for _, d := range docs {
		var tm struct {
			TypeMeta `yaml:",inline"`
			Metadata struct {
				Name string `yaml:"name"`
			} `yaml:"metadata"`
		}
		if err := yaml.Unmarshal(d.data, &tm); err != nil {
			de := &docErrors{doc: d}
			de.yaml("", "", err)
			errs = append(errs, de.sorted()...)
			continue
		}
		name := tm.Metadata.Name
		de := &docErrors{doc: d, kind: tm.Kind, name: name}
		if tm.APIVersion != APIVersion {
			de.field("apiVersion", fmt.Errorf("must be %q, got %q", APIVersion, tm.APIVersion))
			errs = append(errs, de.sorted()...)
			continue
		}
		key := tm.Kind + "/" + name
		if prev, dup := seen[key]; dup && name != "" {
			de.field("metadata.name", fmt.Errorf("duplicate name, first defined at %s:%d", prev.file, prev.line))
			errs = append(errs, de.sorted()...)
			continue
		}
		switch tm.Kind {
		case KindForecastPolicy:
			p := &ForecastPolicy{}
			if err := yaml.UnmarshalStrict(d.data, p); err != nil {
				de.yaml(tm.Kind, name, err)
				// With only unknown fields, the rest can still be checked.
				if yaml.Unmarshal(d.data, p) == nil {
					de.validation(explicitZeros(d.data), p.Validate())
				}
				errs = append(errs, de.sorted()...)
				continue
			}
			if de.validation(explicitZeros(d.data), p.Validate()) {
				errs = append(errs, de.sorted()...)
				continue
			}
			seen[key] = d
			policies = append(policies, p)
			policyLoc[p] = de
		case KindDataSource:
			ds := &DataSource{}
			if err := yaml.UnmarshalStrict(d.data, ds); err != nil {
				de.yaml(tm.Kind, name, err)
				if yaml.Unmarshal(d.data, ds) == nil {
					de.validation(nil, ds.Validate())
				}
				errs = append(errs, de.sorted()...)
				continue
			}
			if de.validation(nil, ds.Validate()) {
				errs = append(errs, de.sorted()...)
				continue
			}
			seen[key] = d
			// Relative file paths (password_file, ca_file, ...) are relative
			// to the policy file, as in a Prometheus configuration file.
			ds.Spec.HTTPClientConfig.SetDirectory(filepath.Dir(d.file))
			set.DataSources[name] = ds
		default:
			de.field("kind", fmt.Errorf("must be %s or %s, got %q", KindForecastPolicy, KindDataSource, tm.Kind))
			errs = append(errs, de.sorted()...)
		}
	}

	// References are checked once every DataSource is known, in any order.
	for _, p := range policies {
		if ref := p.Spec.DataSourceRef; ref != nil {
			if _, ok := set.DataSources[ref.Name]; !ok {
				de := policyLoc[p]
				known := make([]string, 0, len(set.DataSources))
				for n := range set.DataSources {
					known = append(known, n)
				}
				sort.Strings(known)
				de.field("spec.dataSourceRef.name", fmt.Errorf("no valid DataSource named %q (valid: %v)", ref.Name, known))
				errs = append(errs, de.sorted()...)
				continue
			}
		}
		set.Policies = append(set.Policies, p)
	}
	return set, errs
}

// docErrors collects the errors of one document, each at the position of
// its field.
type docErrors struct {
	doc        document
	kind, name string
	pos        *positions // parsed on first use
	errs       []*Error
}

func (de *docErrors) positions() positions {
	if de.pos == nil {
		p := newPositions(de.doc.data)
		de.pos = &p
	}
	return *de.pos
}

// at adds an error at a line and column counted in the document.
func (de *docErrors) at(line, col int, field string, err error) {
	e := &Error{File: de.doc.file, Line: de.doc.line, Kind: de.kind, Name: de.name, Field: field, Err: err}
	if line > 0 && de.doc.line > 0 {
		e.Line, e.Column = de.doc.line+line-1, col
	}
	de.errs = append(de.errs, e)
}

// field adds an error of a field, at the field.
func (de *docErrors) field(field string, err error) {
	line, col := 0, 0
	if field != "" {
		line, col = de.positions().field(field)
	}
	de.at(line, col, field, err)
}

// validation adds the errors of explicitZeros and Validate, and tells
// whether there were any. A field set explicitly to zero is reported once,
// by explicitZeros: Validate saw the default in its place.
func (de *docErrors) validation(zeros, verr error) bool {
	var zs FieldErrors
	errors.As(zeros, &zs)
	explicit := map[string]bool{}
	for _, fe := range zs {
		explicit[fe.Field] = true
		de.field(fe.Field, fe.Err)
	}
	if verr != nil {
		var fes FieldErrors
		var fe *FieldError
		switch {
		case errors.As(verr, &fes):
		case errors.As(verr, &fe):
			fes = FieldErrors{fe}
		default:
			de.field("", verr)
		}
		for _, fe := range fes {
			if !explicit[fe.Field] {
				de.field(fe.Field, fe.Err)
			}
		}
	}
	return len(de.errs) > 0
}

var (
	yamlErrLineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	quotedRE      = regexp.MustCompile(`"(?:[^"\\]|\\.)*"$`)
	unknownRE     = regexp.MustCompile(`^field (\S+) not found in type \S+$`)
)

// yaml adds the errors of a YAML decoder: syntax errors, unknown fields and
// values of the wrong type, one error each, at their own lines.
func (de *docErrors) yaml(kind, name string, err error) {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		msg, syntax := strings.CutPrefix(err.Error(), "yaml: ")
		if !syntax {
			// A value's own decoder failed (a duration, a URL): it names
			// the value but not where it is.
			if m := quotedRE.FindStringSubmatch(msg); m != nil {
				if v, err := strconv.Unquote(m[0]); err == nil {
					if line, col, path, ok := de.positions().scalar(v); ok {
						de.at(line, col, path, errors.New(msg))
						return
					}
				}
			}
			de.at(0, 0, "", errors.New(msg))
			return
		}
		line := 0
		if m := yamlErrLineRE.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = m[2]
		}
		de.at(line, 0, "", fmt.Errorf("invalid YAML: %s", msg))
		return
	}
	for _, e := range te.Errors {
		m := yamlErrLineRE.FindStringSubmatch(e)
		if m == nil {
			de.at(0, 0, "", errors.New(e))
			continue
		}
		line, _ := strconv.Atoi(m[1])
		if u := unknownRE.FindStringSubmatch(m[2]); u != nil {
			if col, path, ok := de.positions().key(line, u[1]); ok {
				de.at(line, col, path, fmt.Errorf("unknown field (no such field in a %s)", kindOr(kind)))
			} else {
				de.at(line, 0, "", fmt.Errorf("field %s not found", u[1]))
			}
			continue
		}
		col, path, _ := de.positions().valueAt(line)
		de.at(line, col, path, errors.New(m[2]))
	}
}

func kindOr(kind string) string {
	if kind == "" {
		return "object"
	}
	return kind
}

// maxObjectErrors bounds the errors reported for one object.
const maxObjectErrors = 20

// sorted returns the errors in the order of their positions in the file,
// at most maxObjectErrors of them and a last one that counts the others.
func (de *docErrors) sorted() []error {
	sort.SliceStable(de.errs, func(i, j int) bool {
		a, b := de.errs[i], de.errs[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	if n := len(de.errs); n > maxObjectErrors {
		de.errs = de.errs[:maxObjectErrors]
		de.at(0, 0, "", fmt.Errorf("%d more errors not shown", n-maxObjectErrors))
	}
	out := make([]error, len(de.errs))
	for i, e := range de.errs {
		out[i] = e
	}
	de.errs = nil
	return out
}
