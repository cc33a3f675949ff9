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
// the line where the object starts, the object and the field.
type Error struct {
	File  string
	Line  int // first line of the object's YAML document, 1-based; 0 if unknown
	Kind  string
	Name  string
	Field string // dotted path, e.g. spec.capacity.max
	Err   error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
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
	policyLoc := map[*ForecastPolicy]document{}
	seen := map[string]document{}

	for _, d := range docs {
		var tm struct {
			TypeMeta `yaml:",inline"`
			Metadata struct {
				Name string `yaml:"name"`
			} `yaml:"metadata"`
		}
		fail := func(kind, name, field string, err error) {
			errs = append(errs, &Error{File: d.file, Line: d.line, Kind: kind, Name: name, Field: field, Err: err})
		}
		if err := yaml.Unmarshal(d.data, &tm); err != nil {
			fail("", "", "", fmt.Errorf("invalid YAML: %w", cleanYAMLError(err, d.line)))
			continue
		}
		name := tm.Metadata.Name
		if tm.APIVersion != APIVersion {
			fail(tm.Kind, name, "apiVersion", fmt.Errorf("must be %q, got %q", APIVersion, tm.APIVersion))
			continue
		}
		key := tm.Kind + "/" + name
		if prev, dup := seen[key]; dup && name != "" {
			fail(tm.Kind, name, "metadata.name", fmt.Errorf("duplicate name, first defined at %s:%d", prev.file, prev.line))
			continue
		}
		switch tm.Kind {
		case KindForecastPolicy:
			p := &ForecastPolicy{}
			if err := yaml.UnmarshalStrict(d.data, p); err != nil {
				fail(tm.Kind, name, "", cleanYAMLError(err, d.line))
				continue
			}
			err := explicitZeros(d.data)
			if err == nil {
				err = p.Validate()
			}
			if err != nil {
				var fe *FieldError
				if errors.As(err, &fe) {
					fail(tm.Kind, name, fe.Field, fe.Err)
				} else {
					fail(tm.Kind, name, "", err)
				}
				continue
			}
			seen[key] = d
			policies = append(policies, p)
			policyLoc[p] = d
		case KindDataSource:
			ds := &DataSource{}
			if err := yaml.UnmarshalStrict(d.data, ds); err != nil {
				fail(tm.Kind, name, "", cleanYAMLError(err, d.line))
				continue
			}
			if err := ds.Validate(); err != nil {
				var fe *FieldError
				if errors.As(err, &fe) {
					fail(tm.Kind, name, fe.Field, fe.Err)
				} else {
					fail(tm.Kind, name, "", err)
				}
				continue
			}
			seen[key] = d
			// Relative file paths (password_file, ca_file, ...) are relative
			// to the policy file, as in a Prometheus configuration file.
			ds.Spec.HTTPClientConfig.SetDirectory(filepath.Dir(d.file))
			set.DataSources[name] = ds
		default:
			fail(tm.Kind, name, "kind", fmt.Errorf("must be %s or %s, got %q", KindForecastPolicy, KindDataSource, tm.Kind))
		}
	}

	// References are checked once every DataSource is known, in any order.
	for _, p := range policies {
		if ref := p.Spec.DataSourceRef; ref != nil {
			if _, ok := set.DataSources[ref.Name]; !ok {
				d := policyLoc[p]
				known := make([]string, 0, len(set.DataSources))
				for n := range set.DataSources {
					known = append(known, n)
				}
				sort.Strings(known)
				errs = append(errs, &Error{File: d.file, Line: d.line, Kind: KindForecastPolicy, Name: p.Metadata.Name,
					Field: "spec.dataSourceRef.name", Err: fmt.Errorf("no valid DataSource named %q (valid: %v)", ref.Name, known)})
				continue
			}
		}
		set.Policies = append(set.Policies, p)
	}
	return set, errs
}

var (
	yamlLineRE   = regexp.MustCompile(`(?m)^(\s*)line (\d+):`)
	yamlGoTypeRE = regexp.MustCompile(`(?m)^(\s*line \d+: field \S+ not found) in type \S+$`)
)

// cleanYAMLError removes the "yaml: unmarshal errors:" preamble and the Go
// type names of unknown-field errors so the message reads well after the
// object's name, and turns the line numbers the YAML decoder counts from the
// start of the document (which starts at line docLine of the file) into line
// numbers of the file.
func cleanYAMLError(err error, docLine int) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: unmarshal errors:\n")
	msg = strings.TrimPrefix(msg, "yaml: ")
	msg = yamlGoTypeRE.ReplaceAllString(msg, "$1")
	msg = yamlLineRE.ReplaceAllStringFunc(msg, func(m string) string {
		sub := yamlLineRE.FindStringSubmatch(m)
		n, err := strconv.Atoi(sub[2])
		if err != nil || docLine < 1 {
			return m
		}
		return fmt.Sprintf("%sline %d:", sub[1], n+docLine-1)
	})
	msg = strings.Join(strings.Fields(msg), " ")
	return errors.New(msg)
}
