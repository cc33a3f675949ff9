// Package crdgen generates the ForecastPolicy and DataSource
// CustomResourceDefinitions in deploy/crds from the Go types the forecaster
// decodes (engine/policy), by reflection: field names come from the yaml tags,
// descriptions from the doc comments. Types that decode themselves
// (UnmarshalYAML) must be listed here with the schema of what they accept, so a
// new such type in engine/policy or prometheus/common fails the generation
// instead of slipping into the CRD with a wrong schema.
package crdgen

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os/exec"
	"reflect"
	"slices"
	"strings"

	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/kedastral/kedastral/engine/policy"
)

// Group is the API group of Kedastral's resources.
const Group = "kedastral.io"

// durationPattern is what model.ParseDuration accepts (Prometheus durations
// such as 0, 30s, 5m, 1h30m, 7d).
const durationPattern = `^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$`

// selfDecoding lists the struct types with an UnmarshalYAML method that
// decodes the struct's own fields (the "type plain T" idiom) plus defaults or
// checks; their schema is that of their fields.
var selfDecoding = map[reflect.Type]bool{
	reflect.TypeFor[policy.DataSourceSpec]():   true,
	reflect.TypeFor[config.HTTPClientConfig](): true,
	reflect.TypeFor[config.BasicAuth]():        true,
	reflect.TypeFor[config.OAuth2]():           true,
	reflect.TypeFor[config.TLSConfig]():        true,
}

// special are the types whose YAML form is not their Go shape.
var special map[reflect.Type]func(*generator) apiextv1.JSONSchemaProps

func init() { special = specialTypes() }

func specialTypes() map[reflect.Type]func(*generator) apiextv1.JSONSchemaProps {
	return map[reflect.Type]func(*generator) apiextv1.JSONSchemaProps{
		reflect.TypeFor[model.Duration](): func(*generator) apiextv1.JSONSchemaProps {
			return apiextv1.JSONSchemaProps{Type: "string", Pattern: durationPattern}
		},
		reflect.TypeFor[policy.Percent](): func(*generator) apiextv1.JSONSchemaProps {
			return apiextv1.JSONSchemaProps{Type: "string", Pattern: `^\s*[0-9]+(\.[0-9]+)?\s*%$`}
		},
		reflect.TypeFor[config.Secret](): func(*generator) apiextv1.JSONSchemaProps {
			return apiextv1.JSONSchemaProps{Type: "string"}
		},
		reflect.TypeFor[config.URL](): func(*generator) apiextv1.JSONSchemaProps {
			return apiextv1.JSONSchemaProps{Type: "string"}
		},
		reflect.TypeFor[config.TLSVersion](): func(*generator) apiextv1.JSONSchemaProps {
			var enum []apiextv1.JSON
			names := make([]string, 0, len(config.TLSVersions))
			for n := range config.TLSVersions {
				names = append(names, n)
			}
			slices.Sort(names)
			for _, n := range names {
				enum = append(enum, jsonString(n))
			}
			return apiextv1.JSONSchemaProps{Type: "string", Enum: enum}
		},
		// Headers is a map of header name to Header, inlined in a struct.
		reflect.TypeFor[config.Headers](): func(g *generator) apiextv1.JSONSchemaProps {
			h := g.schema(reflect.TypeFor[config.Header](), "")
			return apiextv1.JSONSchemaProps{Type: "object", AdditionalProperties: &apiextv1.JSONSchemaPropsOrBool{Allows: true, Schema: &h}}
		},
	}
}

// enums are the string types with a fixed set of values (the constants next to
// the type in engine/policy).
var enums = map[reflect.Type][]string{
	reflect.TypeFor[policy.SelectPolicy]():      {string(policy.SelectMax), string(policy.SelectMin), string(policy.SelectDisabled)},
	reflect.TypeFor[policy.ScalingPolicyType](): {string(policy.PodsScalingPolicy), string(policy.PercentScalingPolicy)},
}

// optionalWithoutOmitempty are fields of engine/policy without omitempty whose
// zero value the forecaster accepts, so the CRD must not require them.
var optionalWithoutOmitempty = map[string]bool{
	"ForecastPolicySpec.leadTime": true, // 0: scale for now
}

// celRules are the x-kubernetes-validations of a type's object schema: the
// checks of engine/policy's Validate the API server can run at apply time,
// so kubectl apply refuses such an object instead of the forecaster
// reporting it in the status. Each names its field (fieldPath), and a zero
// where engine/policy reads zero as "the default" is allowed.
var celRules = map[reflect.Type][]apiextv1.ValidationRule{
	reflect.TypeFor[policy.Capacity](): {
		{Rule: "self.targetPerPod > 0.0", Message: "must be a positive number", FieldPath: ".targetPerPod"},
		{Rule: "self.max >= 1", Message: "must be at least 1", FieldPath: ".max"},
		{Rule: "!has(self.min) || self.min >= 0", Message: "must not be negative", FieldPath: ".min"},
		{Rule: "!has(self.min) || self.min <= self.max", Message: "min is greater than max", FieldPath: ".min"},
		{Rule: "!has(self.headroom) || (self.headroom >= 0.0 && self.headroom <= 100.0)", Message: "must be in (0, 100]", FieldPath: ".headroom"},
		{Rule: "!has(self.tolerance) || (self.tolerance >= 0.0 && self.tolerance < 1.0)", Message: "must be in [0, 1)", FieldPath: ".tolerance"},
	},
	reflect.TypeFor[policy.ForecastPolicySpec](): {
		{Rule: "!has(self.objective) || !has(self.model) || !has(self.model.quantile) || self.model.quantile == 0.0", Message: "objective and model.quantile are exclusive: the objective calibrates the quantile online", FieldPath: ".objective"},
		{Rule: "!has(self.objective) || self.sources.all(s, !has(s.quantile) || s.quantile == 0.0)", Message: "objective and the sources' quantile are exclusive: the objective calibrates the quantile online", FieldPath: ".objective"},
	},
	reflect.TypeFor[policy.ModelSpec](): {
		{Rule: "!has(self.quantile) || (self.quantile >= 0.0 && self.quantile < 1.0)", Message: "must be in (0, 1)", FieldPath: ".quantile"},
		{Rule: "has(self.byom) == (has(self.type) && self.type == 'byom')", Message: "is required with type byom and only allowed with it", FieldPath: ".byom"},
	},
	reflect.TypeFor[policy.Source](): {
		{Rule: "!has(self.quantile) || (self.quantile >= 0.0 && self.quantile < 1.0)", Message: "must be in (0, 1)", FieldPath: ".quantile"},
		{Rule: "!has(self.targetPerPod) || self.targetPerPod >= 0.0", Message: "must be a positive number", FieldPath: ".targetPerPod"},
		{Rule: "self.query != ''", Message: "is required", FieldPath: ".query"},
	},
}

// minItems are the lists that must not be empty, by "Type.field".
var minItems = map[string]int64{
	"ForecastPolicySpec.sources": 1,
}

type generator struct {
	docs map[string]string // "pkgpath.Type.Field" and "pkgpath.Type" → doc comment
	err  error
}

// CRDs returns the ForecastPolicy and DataSource CustomResourceDefinitions.
func CRDs() ([]*apiextv1.CustomResourceDefinition, error) {
	g := &generator{docs: map[string]string{}}
	for _, pkg := range []string{"github.com/kedastral/kedastral/engine/policy", "github.com/prometheus/common/config"} {
		if err := g.loadDocs(pkg); err != nil {
			return nil, err
		}
	}
	ready := `.status.conditions[?(@.type=="Ready")]`
	fp := g.crd("ForecastPolicy", "forecastpolicies", []string{"fpol"}, reflect.TypeFor[policy.ForecastPolicySpec](), reflect.TypeFor[policy.ForecastPolicyStatus](), []apiextv1.CustomResourceColumnDefinition{
		{Name: "Target", Type: "string", JSONPath: ".spec.targetRef.name"},
		{Name: "Ready", Type: "string", JSONPath: ready + ".status"},
		{Name: "Reason", Type: "string", JSONPath: ready + ".reason"},
		{Name: "Desired", Type: "string", JSONPath: ".status.desiredReplicas"},
		{Name: "Series", Type: "integer", JSONPath: ".status.seriesCount"},
		{Name: "Model", Type: "string", JSONPath: ".status.model"},
		{Name: "Last Evaluation", Type: "date", JSONPath: ".status.lastEvaluationTime"},
		{Name: "Age", Type: "date", JSONPath: ".metadata.creationTimestamp"},
		{Name: "Metric", Type: "string", JSONPath: ".spec.metric", Priority: 1},
		{Name: "Horizon", Type: "string", JSONPath: ".spec.horizon", Priority: 1},
		{Name: "Lead Time", Type: "string", JSONPath: ".spec.leadTime", Priority: 1},
		{Name: "Min", Type: "integer", JSONPath: ".spec.capacity.min", Priority: 1},
		{Name: "Max", Type: "integer", JSONPath: ".spec.capacity.max", Priority: 1},
		{Name: "ScaledObject", Type: "string", JSONPath: ".status.scaledObject", Priority: 1},
		{Name: "Message", Type: "string", JSONPath: ready + ".message", Priority: 1},
	})
	ds := g.crd("DataSource", "datasources", nil, reflect.TypeFor[policy.DataSourceSpec](), reflect.TypeFor[policy.DataSourceStatus](), []apiextv1.CustomResourceColumnDefinition{
		{Name: "Type", Type: "string", JSONPath: ".spec.type"},
		{Name: "URL", Type: "string", JSONPath: ".spec.url"},
		{Name: "Ready", Type: "string", JSONPath: ready + ".status"},
		{Name: "Reason", Type: "string", JSONPath: ready + ".reason"},
		{Name: "Age", Type: "date", JSONPath: ".metadata.creationTimestamp"},
	})
	if g.err != nil {
		return nil, g.err
	}
	return []*apiextv1.CustomResourceDefinition{fp, ds}, nil
}

// Files returns the CRDs as YAML, keyed by their file name in deploy/crds.
func Files() (map[string][]byte, error) {
	crds, err := CRDs()
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, c := range crds {
		b, err := Marshal(c)
		if err != nil {
			return nil, err
		}
		out[Group+"_"+c.Spec.Names.Plural+".yaml"] = b
	}
	return out, nil
}

// Marshal renders a CRD as YAML without the empty status and creationTimestamp
// that the API types always carry.
func Marshal(c *apiextv1.CustomResourceDefinition) ([]byte, error) {
	j, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		return nil, err
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	b, err := yaml.Marshal(m)
	if err != nil {
		return nil, err
	}
	return append([]byte("# Generated from engine/policy/types.go by deploy/test/cmd/crdgen (make crds). DO NOT EDIT.\n"), b...), nil
}

func (g *generator) crd(kind, plural string, short []string, specType, statusType reflect.Type, cols []apiextv1.CustomResourceColumnDefinition) *apiextv1.CustomResourceDefinition {
	spec := g.schema(specType, "")
	spec.Description = g.docs[typeKey(specType)]
	status := g.schema(statusType, "status")
	status.Description = g.docs[typeKey(statusType)]
	root := apiextv1.JSONSchemaProps{
		Type:        "object",
		Description: g.docs[typeKey(reflect.TypeFor[policy.ForecastPolicy]())],
		Required:    []string{"spec"},
		Properties: map[string]apiextv1.JSONSchemaProps{
			"apiVersion": {Type: "string", Description: "APIVersion is kedastral.io/v1alpha1."},
			"kind":       {Type: "string", Description: "Kind is " + kind + "."},
			"metadata":   {Type: "object"},
			"spec":       spec,
			"status":     status,
		},
	}
	if kind == "DataSource" {
		root.Description = g.docs[typeKey(reflect.TypeFor[policy.DataSource]())]
	}
	singular := strings.ToLower(kind)
	return &apiextv1.CustomResourceDefinition{
		TypeMeta: metav1.TypeMeta{APIVersion: "apiextensions.k8s.io/v1", Kind: "CustomResourceDefinition"},
		ObjectMeta: metav1.ObjectMeta{
			Name:   plural + "." + Group,
			Labels: map[string]string{"app.kubernetes.io/part-of": "kedastral"},
		},
		Spec: apiextv1.CustomResourceDefinitionSpec{
			Group: Group,
			Names: apiextv1.CustomResourceDefinitionNames{
				Kind: kind, ListKind: kind + "List", Plural: plural, Singular: singular,
				ShortNames: short, Categories: []string{"kedastral"},
			},
			Scope: apiextv1.NamespaceScoped,
			Versions: []apiextv1.CustomResourceDefinitionVersion{{
				Name:                     "v1alpha1",
				Served:                   true,
				Storage:                  true,
				Schema:                   &apiextv1.CustomResourceValidation{OpenAPIV3Schema: &root},
				Subresources:             &apiextv1.CustomResourceSubresources{Status: &apiextv1.CustomResourceSubresourceStatus{}},
				AdditionalPrinterColumns: cols,
			}},
		},
	}
}

func (g *generator) fail(format string, args ...any) {
	if g.err == nil {
		g.err = fmt.Errorf(format, args...)
	}
}

var unmarshalerMethod = "UnmarshalYAML"

func hasUnmarshaler(t reflect.Type) bool {
	_, ok := reflect.PointerTo(t).MethodByName(unmarshalerMethod)
	return ok
}

// schema returns the schema of t; path names it in errors.
func (g *generator) schema(t reflect.Type, path string) apiextv1.JSONSchemaProps {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if f, ok := special[t]; ok {
		return f(g)
	}
	if hasUnmarshaler(t) && !selfDecoding[t] {
		g.fail("%s: type %s decodes itself (UnmarshalYAML); add it to crdgen's special or selfDecoding list with the schema it accepts", path, t)
		return apiextv1.JSONSchemaProps{}
	}
	if vals, ok := enums[t]; ok {
		s := apiextv1.JSONSchemaProps{Type: "string"}
		for _, v := range vals {
			s.Enum = append(s.Enum, jsonString(v))
		}
		return s
	}
	switch t.Kind() {
	case reflect.String:
		return apiextv1.JSONSchemaProps{Type: "string"}
	case reflect.Bool:
		return apiextv1.JSONSchemaProps{Type: "boolean"}
	case reflect.Int32, reflect.Int16, reflect.Int8, reflect.Uint8, reflect.Uint16:
		return apiextv1.JSONSchemaProps{Type: "integer", Format: "int32"}
	case reflect.Int, reflect.Int64, reflect.Uint32, reflect.Uint64, reflect.Uint:
		return apiextv1.JSONSchemaProps{Type: "integer", Format: "int64"}
	case reflect.Float32, reflect.Float64:
		return apiextv1.JSONSchemaProps{Type: "number"}
	case reflect.Slice, reflect.Array:
		items := g.schema(t.Elem(), path+"[]")
		return apiextv1.JSONSchemaProps{Type: "array", Items: &apiextv1.JSONSchemaPropsOrArray{Schema: &items}}
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			g.fail("%s: map key %s is not a string", path, t.Key())
		}
		if t.Elem().Kind() == reflect.Interface {
			preserve := true
			return apiextv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: &preserve}
		}
		v := g.schema(t.Elem(), path+"{}")
		return apiextv1.JSONSchemaProps{Type: "object", AdditionalProperties: &apiextv1.JSONSchemaPropsOrBool{Allows: true, Schema: &v}}
	case reflect.Struct:
		s := apiextv1.JSONSchemaProps{Type: "object", Properties: map[string]apiextv1.JSONSchemaProps{}}
		g.fields(t, path, &s)
		slices.Sort(s.Required)
		s.XValidations = celRules[t]
		return s
	}
	g.fail("%s: no schema for %s (kind %s)", path, t, t.Kind())
	return apiextv1.JSONSchemaProps{}
}

// fields adds t's fields to s, following ",inline".
func (g *generator) fields(t reflect.Type, path string, s *apiextv1.JSONSchemaProps) {
	own := t.PkgPath() == reflect.TypeFor[policy.ForecastPolicy]().PkgPath()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag, ok := f.Tag.Lookup("yaml")
		if !ok {
			g.fail("%s.%s: no yaml tag", t, f.Name)
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if slices.Contains(strings.Split(opts, ","), "inline") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() != reflect.Struct {
				g.fail("%s.%s: inline of non-struct %s", t, f.Name, ft)
				continue
			}
			if hasUnmarshaler(ft) && !selfDecoding[ft] {
				g.fail("%s.%s: inlined type %s decodes itself; add it to crdgen's selfDecoding list", t, f.Name, ft)
			}
			g.fields(ft, path, s)
			continue
		}
		if name == "" {
			g.fail("%s.%s: yaml tag without a name", t, f.Name)
			continue
		}
		if _, dup := s.Properties[name]; dup {
			g.fail("%s: duplicate field %q", path, name)
		}
		p := g.schema(f.Type, path+"."+name)
		p.Description = g.docs[typeKey(t)+"."+f.Name]
		if n, ok := minItems[t.Name()+"."+name]; ok {
			p.MinItems = &n
		}
		s.Properties[name] = p
		if own && !strings.Contains(opts, "omitempty") && f.Type.Kind() != reflect.Pointer && !optionalWithoutOmitempty[t.Name()+"."+name] {
			s.Required = append(s.Required, name)
		}
	}
}

func typeKey(t reflect.Type) string { return t.PkgPath() + "." + t.Name() }

func jsonString(s string) apiextv1.JSON {
	b, _ := json.Marshal(s)
	return apiextv1.JSON{Raw: b}
}

// loadDocs reads the doc comments of the exported types and fields of pkg.
func (g *generator) loadDocs(pkg string) error {
	out, err := exec.Command("go", "list", "-f", "{{.Dir}}", pkg).Output()
	if err != nil {
		return fmt.Errorf("go list %s: %w", pkg, err)
	}
	dir := strings.TrimSpace(string(out))
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, dir, func(fi fs.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, parser.ParseComments)
	if err != nil {
		return fmt.Errorf("parse %s: %w", dir, err)
	}
	for _, p := range pkgs {
		for _, f := range p.Files {
			for _, d := range f.Decls {
				gd, ok := d.(*ast.GenDecl)
				if !ok || gd.Tok != token.TYPE {
					continue
				}
				for _, sp := range gd.Specs {
					ts := sp.(*ast.TypeSpec)
					key := pkg + "." + ts.Name.Name
					if c := comment(ts.Doc, gd.Doc); c != "" {
						g.docs[key] = c
					}
					st, ok := ts.Type.(*ast.StructType)
					if !ok {
						continue
					}
					for _, fl := range st.Fields.List {
						c := comment(fl.Doc, fl.Comment)
						for _, n := range fl.Names {
							if c != "" {
								g.docs[key+"."+n.Name] = c
							}
						}
					}
				}
			}
		}
	}
	return nil
}

func comment(groups ...*ast.CommentGroup) string {
	for _, cg := range groups {
		if cg == nil {
			continue
		}
		if t := strings.TrimSpace(cg.Text()); t != "" {
			return strings.Join(strings.Fields(t), " ")
		}
	}
	return ""
}

// ValuesSchema returns the chart's values.schema.json with its definitions
// forecastPolicySpec and dataSourceSpec replaced by the CRDs' spec schemas, in
// JSON Schema form and closed (additionalProperties: false), so a misspelled
// policy field fails `helm install`.
func ValuesSchema(current []byte) ([]byte, error) {
	crds, err := CRDs()
	if err != nil {
		return nil, err
	}
	var s map[string]any
	if err := json.Unmarshal(current, &s); err != nil {
		return nil, fmt.Errorf("values.schema.json: %w", err)
	}
	defs, _ := s["definitions"].(map[string]any)
	if defs == nil {
		defs = map[string]any{}
		s["definitions"] = defs
	}
	for _, c := range crds {
		spec := c.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
		j, err := json.Marshal(spec)
		if err != nil {
			return nil, err
		}
		var m any
		if err := json.Unmarshal(j, &m); err != nil {
			return nil, err
		}
		name := strings.ToLower(c.Spec.Names.Kind[:1]) + c.Spec.Names.Kind[1:] + "Spec"
		defs[name] = toJSONSchema(m)
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// toJSONSchema turns an OpenAPI v3 structural schema into plain JSON Schema:
// objects with properties are closed, x-kubernetes-* extensions dropped.
func toJSONSchema(v any) any {
	switch v := v.(type) {
	case map[string]any:
		preserve, _ := v["x-kubernetes-preserve-unknown-fields"].(bool)
		out := map[string]any{}
		for k, x := range v {
			if strings.HasPrefix(k, "x-kubernetes-") {
				continue
			}
			switch k {
			case "properties":
				props := map[string]any{}
				for pk, pv := range x.(map[string]any) {
					props[pk] = toJSONSchema(pv)
				}
				out[k] = props
			case "items", "additionalProperties":
				out[k] = toJSONSchema(x)
			default:
				out[k] = x
			}
		}
		if v["type"] == "object" && !preserve {
			if _, ok := out["additionalProperties"]; !ok {
				out["additionalProperties"] = false
			}
		}
		return out
	default:
		return v
	}
}
