// Package kubeschema writes the JSON schemas kubeconform validates against,
// offline: one standalone, strict schema per kind, from Kubernetes' OpenAPI v2
// document (api/openapi-spec/swagger.json of the k8s.io/kubernetes module) and
// from CustomResourceDefinition files. The layout matches the kubeconform
// schema location template in Template.
package kubeschema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

// Template is the -schema-location to give kubeconform, after the directory:
// kubeconform -schema-location "$DIR/"+Template.
const Template = "{{ .Group }}/{{ .ResourceAPIVersion }}/{{ .ResourceKind }}.json"

// path is where kubeconform looks for the schema of kind in group/version
// (core kinds: group is empty and kubeconform's Group is the version).
func path(dir, group, version, kind string) string {
	g := group
	if g == "" {
		g = version
	}
	return filepath.Join(dir, g, version, strings.ToLower(kind)+".json")
}

// FromSwagger writes a schema for every kind of a Kubernetes OpenAPI v2
// document and returns how many it wrote.
func FromSwagger(dir string, swagger io.Reader) (int, error) {
	var doc struct {
		Definitions map[string]map[string]any `json:"definitions"`
	}
	if err := json.NewDecoder(swagger).Decode(&doc); err != nil {
		return 0, fmt.Errorf("decode swagger: %w", err)
	}
	n := 0
	for name, def := range doc.Definitions {
		gvks, _ := def["x-kubernetes-group-version-kind"].([]any)
		for _, x := range gvks {
			gvk := x.(map[string]any)
			group, version, kind := gvk["group"].(string), gvk["version"].(string), gvk["kind"].(string)
			r := &resolver{defs: doc.Definitions, stack: map[string]bool{name: true}}
			s := r.convert(def)
			if err := write(path(dir, group, version, kind), s); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

type resolver struct {
	defs  map[string]map[string]any
	stack map[string]bool
}

const refPrefix = "#/definitions/"

// convert inlines $refs (a recursive reference becomes {}), closes objects and
// turns Kubernetes' formats into JSON Schema.
func (r *resolver) convert(v any) any {
	switch v := v.(type) {
	case map[string]any:
		if ref, ok := v["$ref"].(string); ok {
			name := strings.TrimPrefix(ref, refPrefix)
			if r.stack[name] {
				return map[string]any{}
			}
			def, ok := r.defs[name]
			if !ok {
				return map[string]any{}
			}
			r.stack[name] = true
			out := r.convert(def)
			delete(r.stack, name)
			if d, ok := v["description"]; ok {
				if m, ok := out.(map[string]any); ok {
					m["description"] = d
				}
			}
			return out
		}
		out := map[string]any{}
		for k, x := range v {
			switch k {
			case "x-kubernetes-group-version-kind", "x-kubernetes-patch-merge-key", "x-kubernetes-patch-strategy", "x-kubernetes-list-type", "x-kubernetes-list-map-keys", "x-kubernetes-map-type", "x-kubernetes-unions":
				continue
			case "properties":
				props := map[string]any{}
				for pk, pv := range x.(map[string]any) {
					props[pk] = r.convert(pv)
				}
				out[k] = props
			case "items", "additionalProperties", "not":
				out[k] = r.convert(x)
			case "allOf", "anyOf", "oneOf":
				var l []any
				for _, e := range x.([]any) {
					l = append(l, r.convert(e))
				}
				out[k] = l
			default:
				out[k] = x
			}
		}
		return fixup(out)
	default:
		return v
	}
}

// fixup rewrites one converted schema node: int-or-string and quantities
// accept a string or a number, objects with properties are closed.
func fixup(out map[string]any) map[string]any {
	intOrString, _ := out["x-kubernetes-int-or-string"].(bool)
	if out["format"] == "int-or-string" || intOrString {
		delete(out, "type")
		delete(out, "format")
		delete(out, "x-kubernetes-int-or-string")
		out["oneOf"] = []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}
	}
	if out["format"] == "quantity" || isQuantity(out) {
		delete(out, "type")
		delete(out, "format")
		out["oneOf"] = []any{map[string]any{"type": "string"}, map[string]any{"type": "number"}}
	}
	preserve, _ := out["x-kubernetes-preserve-unknown-fields"].(bool)
	delete(out, "x-kubernetes-preserve-unknown-fields")
	delete(out, "x-kubernetes-embedded-resource")
	delete(out, "x-kubernetes-validations")
	if _, ok := out["properties"]; ok && !preserve {
		if _, ok := out["additionalProperties"]; !ok {
			out["additionalProperties"] = false
		}
	}
	return out
}

// isQuantity recognises resource.Quantity, a string in the OpenAPI document
// that YAML users write as a number too (cpu: 1).
func isQuantity(m map[string]any) bool {
	d, _ := m["description"].(string)
	return m["type"] == "string" && strings.HasPrefix(d, "Quantity is a fixed-point representation of a number.")
}

// FromCRDs writes a schema for every served version of the
// CustomResourceDefinitions in a YAML stream and returns how many it wrote.
func FromCRDs(dir string, data []byte) (int, error) {
	n := 0
	for _, doc := range bytes.Split(data, []byte("\n---")) {
		var crd struct {
			Kind string `json:"kind"`
			Spec struct {
				Group string `json:"group"`
				Names struct {
					Kind string `json:"kind"`
				} `json:"names"`
				Versions []struct {
					Name   string `json:"name"`
					Schema struct {
						OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
					} `json:"schema"`
				} `json:"versions"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal(doc, &crd); err != nil {
			return n, fmt.Errorf("decode CRD: %w", err)
		}
		if crd.Kind != "CustomResourceDefinition" {
			continue
		}
		for _, v := range crd.Spec.Versions {
			r := &resolver{stack: map[string]bool{}}
			s := r.convert(v.Schema.OpenAPIV3Schema)
			if err := write(path(dir, crd.Spec.Group, v.Name, crd.Spec.Names.Kind), s); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

func write(file string, schema any) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	b, err := json.Marshal(schema)
	if err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o644)
}
