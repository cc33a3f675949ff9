// Package mixin_test checks the Kedastral monitoring mixin: jsonnet formatting,
// reproducible generated files under out/, promtool check and unit tests,
// dashboard conventions, vendoring by path, and (e2e_test.go) the rules and
// every dashboard query against a real Prometheus holding Kedastral's series.
//
// `go test ./mixins/kedastral -run TestGenerated -update` rewrites out/.
package mixin_test

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v2"

	"github.com/kedastral/kedastral/promapi/promtest"
	"github.com/kedastral/kedastral/test/prereq"
)

var update = flag.Bool("update", false, "rewrite the generated files under out/")

const outDir = "out"

// generated maps each one-line entry point to how jsonnet runs it: -S for a
// YAML string into one file, -m for a set of dashboards into out/.
var entryPoints = []struct {
	file   string
	output string // file under out/; empty for -m
}{
	{"prometheus_rules.jsonnet", "kedastral-rules.yaml"},
	{"prometheus_alerts.jsonnet", "kedastral-alerts.yaml"},
	{"dashboards.jsonnet", ""},
}

func jsonnetBin(t testing.TB) string {
	return prereq.Program(t, "jsonnet")
}

// promtoolBin is promtool: the one $KEDASTRAL_PROMETHEUS_BIN selects (the
// Prometheus 3 run of make test), else the one on PATH.
func promtoolBin(t testing.TB) string {
	if os.Getenv(promtest.BinEnv) != "" {
		p, err := promtest.Binary("", "promtool")
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	return prereq.Program(t, "promtool")
}

func run(t testing.TB, dir, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", filepath.Base(name), strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return out
}

// jsonnetSources lists the mixin's jsonnet files, vendor/ and out/ excluded.
func jsonnetSources(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "vendor" || d.Name() == outDir) {
			return filepath.SkipDir
		}
		if ext := filepath.Ext(p); ext == ".jsonnet" || ext == ".libsonnet" {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no jsonnet files found")
	}
	return files
}

func TestJsonnetfmt(t *testing.T) {
	bin := prereq.Program(t, "jsonnetfmt")
	files := jsonnetSources(t)
	cmd := exec.Command(bin, append([]string{"--test"}, files...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("jsonnetfmt --test: %v\n%s\nrun: jsonnetfmt -i %s", err, out, strings.Join(files, " "))
	}
}

// build runs every entry point into dir and returns the files it wrote,
// relative to dir.
func build(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	bin := jsonnetBin(t)
	for _, e := range entryPoints {
		if e.output == "" {
			run(t, ".", bin, "-m", dir, e.file)
			continue
		}
		out := run(t, ".", bin, "-S", e.file)
		if err := os.WriteFile(filepath.Join(dir, e.output), out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return readDir(t, dir)
}

func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = b
	}
	return files
}

// TestGenerated builds the mixin afresh and compares it with the committed
// files under out/; with -update it rewrites out/ instead.
func TestGenerated(t *testing.T) {
	fresh := build(t, t.TempDir())
	if len(fresh) < 3 {
		t.Fatalf("the build wrote %d files", len(fresh))
	}
	if *update {
		if err := os.RemoveAll(outDir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(outDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range fresh {
			if err := os.WriteFile(filepath.Join(outDir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	committed := readDir(t, outDir)
	for name, b := range fresh {
		old, ok := committed[name]
		switch {
		case !ok:
			t.Errorf("out/%s is missing; run make mixin", name)
		case !bytes.Equal(old, b):
			t.Errorf("out/%s differs from a fresh build; run make mixin", name)
		}
	}
	for name := range committed {
		if _, ok := fresh[name]; !ok {
			t.Errorf("out/%s is not generated any more; run make mixin", name)
		}
	}
}

func TestPromtoolCheckRules(t *testing.T) {
	bin := promtoolBin(t)
	run(t, ".", bin, "check", "rules", filepath.Join(outDir, "kedastral-rules.yaml"), filepath.Join(outDir, "kedastral-alerts.yaml"))
}

func testFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("tests/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no promtool unit tests under tests/: %v", err)
	}
	return files
}

func TestPromtoolUnitTests(t *testing.T) {
	bin := promtoolBin(t)
	run(t, ".", bin, append([]string{"test", "rules"}, testFiles(t)...)...)
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Record      string            `yaml:"record"`
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func readRules(t *testing.T, name string) []rule {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(outDir, name))
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var rules []rule
	for _, g := range f.Groups {
		rules = append(rules, g.Rules...)
	}
	return rules
}

type unitTests struct {
	Tests []struct {
		AlertRuleTest []struct {
			EvalTime  string `yaml:"eval_time"`
			Alertname string `yaml:"alertname"`
			ExpAlerts []struct {
				ExpLabels      map[string]string `yaml:"exp_labels"`
				ExpAnnotations map[string]string `yaml:"exp_annotations"`
			} `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
		PromQLExprTest []struct {
			Expr string `yaml:"expr"`
		} `yaml:"promql_expr_test"`
	} `yaml:"tests"`
}

func parseDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	if s == "" {
		return 0
	}
	if strings.HasSuffix(s, "d") { // promtool and Prometheus accept days.
		d, err := time.ParseDuration(strings.TrimSuffix(s, "d") + "h")
		if err != nil {
			t.Fatal(err)
		}
		return 24 * d
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("duration %q: %v", s, err)
	}
	return d
}

// TestUnitTestCoverage checks that the promtool unit tests cover the rules:
// each alert is tested once before its `for` has elapsed with no alert
// expected, and once after with alerts whose labels and every annotation are
// given; each recording rule is queried by a promql_expr_test.
func TestUnitTestCoverage(t *testing.T) {
	type seen struct {
		quietBeforeFor, firingAfterFor bool
		quiet, firing                  []time.Duration // per test case
	}
	alerts := map[string]*seen{}
	fors := map[string]time.Duration{}
	annotations := map[string][]string{}
	for _, r := range readRules(t, "kedastral-alerts.yaml") {
		alerts[r.Alert] = &seen{}
		fors[r.Alert] = parseDuration(t, r.For)
		for k := range r.Annotations {
			annotations[r.Alert] = append(annotations[r.Alert], k)
		}
		if r.For == "" {
			t.Errorf("alert %s has no `for`", r.Alert)
		}
		for _, k := range []string{"summary", "description", "runbook_url"} {
			if r.Annotations[k] == "" {
				t.Errorf("alert %s has no %s annotation", r.Alert, k)
			}
		}
		if r.Labels["severity"] == "" {
			t.Errorf("alert %s has no severity label", r.Alert)
		}
		if !strings.HasPrefix(r.Alert, "Kedastral") {
			t.Errorf("alert %s is not named Kedastral...", r.Alert)
		}
	}
	records := map[string]bool{}
	recordName := regexp.MustCompile(`^[a-z_]+:[a-z_]+:[a-z_0-9]+$`)
	for _, r := range readRules(t, "kedastral-rules.yaml") {
		records[r.Record] = false
		if !recordName.MatchString(r.Record) {
			t.Errorf("recording rule %s is not named level:metric:operations", r.Record)
		}
	}
	exprName := regexp.MustCompile(`[a-z_]+:[a-z_]+:[a-z_0-9]+`)
	for _, file := range testFiles(t) {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var u unitTests
		if err := yaml.Unmarshal(b, &u); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for _, tc := range u.Tests {
			for _, at := range tc.AlertRuleTest {
				s, ok := alerts[at.Alertname]
				if !ok {
					t.Errorf("%s tests unknown alert %s", file, at.Alertname)
					continue
				}
				ts := parseDuration(t, at.EvalTime)
				if len(at.ExpAlerts) == 0 {
					s.quiet = append(s.quiet, ts)
				}
				if len(at.ExpAlerts) > 0 && ts >= fors[at.Alertname] {
					s.firing = append(s.firing, ts)
					for _, a := range at.ExpAlerts {
						for _, k := range annotations[at.Alertname] {
							if _, ok := a.ExpAnnotations[k]; !ok {
								t.Errorf("%s: alert %s at %s: annotation %s not checked", file, at.Alertname, at.EvalTime, k)
							}
						}
						if a.ExpLabels["severity"] == "" {
							t.Errorf("%s: alert %s at %s: labels not checked", file, at.Alertname, at.EvalTime)
						}
					}
				}
			}
			// Within a test case, a quiet evaluation less than `for` before a
			// firing one is the alert still pending.
			for name, s := range alerts {
				for _, f := range s.firing {
					s.firingAfterFor = true
					for _, q := range s.quiet {
						if q < f && f-q <= fors[name] {
							s.quietBeforeFor = true
						}
					}
				}
				s.quiet, s.firing = nil, nil
			}
			for _, et := range tc.PromQLExprTest {
				for _, name := range exprName.FindAllString(et.Expr, -1) {
					if _, ok := records[name]; ok {
						records[name] = true
					}
				}
			}
		}
	}
	for name, s := range alerts {
		if !s.quietBeforeFor {
			t.Errorf("alert %s is not tested quiet less than its `for` (%s) before it fires", name, fors[name])
		}
		if !s.firingAfterFor {
			t.Errorf("alert %s is not tested firing after its `for` (%s)", name, fors[name])
		}
	}
	for name, tested := range records {
		if !tested {
			t.Errorf("recording rule %s has no promql_expr_test", name)
		}
	}
}

type dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Datasource *datasourceRef  `json:"datasource"`
	Definition string          `json:"definition"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID          int            `json:"id"`
	Type        string         `json:"type"`
	Title       string         `json:"title"`
	Description string         `json:"description"`
	Datasource  *datasourceRef `json:"datasource"`
	Repeat      string         `json:"repeat"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []struct {
		Expr       string         `json:"expr"`
		RefID      string         `json:"refId"`
		Datasource *datasourceRef `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

// allPanels flattens rows (collapsed rows keep their panels inside).
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

func readDashboards(t *testing.T) map[string]dashboard {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(outDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards under out/: %v", err)
	}
	out := map[string]dashboard{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		dec := json.NewDecoder(bytes.NewReader(b))
		if err := dec.Decode(&d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[filepath.Base(f)] = d
	}
	return out
}

// grafanaBuiltins are the variables Grafana defines itself.
var grafanaBuiltins = []string{"__rate_interval", "__interval", "__range", "__interval_ms", "__range_s"}

var varRef = regexp.MustCompile(`\$\{?(\w+)`)

// TestDashboardConventions checks what mixtool's linter checks, and stable uids:
// a datasource variable used by every panel and target, job and instance
// variables, a unit and a description on every panel, uids that are the md5 of
// the file name, no reference to an undefined variable.
func TestDashboardConventions(t *testing.T) {
	uids := map[string]string{}
	for file, d := range readDashboards(t) {
		t.Run(file, func(t *testing.T) {
			sum := md5.Sum([]byte(file))
			if want := hex.EncodeToString(sum[:]); d.UID != want {
				t.Errorf("uid %q, want md5(%q) = %q", d.UID, file, want)
			}
			if other, ok := uids[d.UID]; ok {
				t.Errorf("uid %s is also the uid of %s", d.UID, other)
			}
			uids[d.UID] = file
			if !strings.HasPrefix(d.Title, "Kedastral / ") {
				t.Errorf("title %q lacks the prefix", d.Title)
			}
			vars := map[string]variable{}
			for _, v := range d.Templating.List {
				vars[v.Name] = v
				if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != "${datasource}") {
					t.Errorf("variable %s does not query ${datasource}", v.Name)
				}
			}
			if v, ok := vars["datasource"]; !ok || v.Type != "datasource" || string(v.Query) != `"prometheus"` {
				t.Errorf("no prometheus datasource variable named datasource: %+v", v)
			}
			for _, name := range []string{"job", "instance"} {
				if v, ok := vars[name]; !ok || v.Type != "query" {
					t.Errorf("no %s query variable", name)
				}
			}
			ids := map[int]bool{}
			for _, p := range allPanels(d.Panels) {
				if ids[p.ID] {
					t.Errorf("panel id %d is used twice", p.ID)
				}
				ids[p.ID] = true
				if p.Type == "row" {
					continue
				}
				if p.Description == "" {
					t.Errorf("panel %q has no description", p.Title)
				}
				if p.FieldConfig.Defaults.Unit == "" {
					t.Errorf("panel %q has no unit", p.Title)
				}
				if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
					t.Errorf("panel %q does not use the datasource variable", p.Title)
				}
				if len(p.Targets) == 0 {
					t.Errorf("panel %q has no targets", p.Title)
				}
				if p.Repeat != "" {
					if _, ok := vars[p.Repeat]; !ok {
						t.Errorf("panel %q repeats over undefined variable %s", p.Title, p.Repeat)
					}
				}
				for _, tg := range p.Targets {
					if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
						t.Errorf("panel %q target %s does not use the datasource variable", p.Title, tg.RefID)
					}
					for _, m := range varRef.FindAllStringSubmatch(tg.Expr+" "+p.Title+" "+p.Description, -1) {
						if _, ok := vars[m[1]]; !ok && !slices.Contains(grafanaBuiltins, m[1]) {
							t.Errorf("panel %q refers to undefined variable $%s", p.Title, m[1])
						}
					}
				}
			}
		})
	}
}

// TestVendoredImport consumes the mixin the way jsonnet-bundler vendors it: a
// separate jsonnet file imports it from a vendor directory on the -J path and
// overrides its config.
func TestVendoredImport(t *testing.T) {
	bin := jsonnetBin(t)
	abs, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	vendor := filepath.Join(dir, "vendor")
	if err := os.MkdirAll(vendor, 0o755); err != nil {
		t.Fatal(err)
	}
	// jb links vendor/<name> to the package's directory; do the same.
	if err := os.Symlink(abs, filepath.Join(vendor, "kedastral")); err != nil {
		t.Fatal(err)
	}
	consumer := `
local kedastral = (import 'kedastral/mixin.libsonnet') + {
  _config+:: {
    forecasterSelector: 'job="my-forecaster"',
    dashboardTags: ['mine'],
  },
};
{
  alerts: kedastral.prometheusAlerts,
  rules: kedastral.prometheusRules,
  dashboards: { [name]: kedastral.grafanaDashboards[name].tags for name in std.objectFields(kedastral.grafanaDashboards) },
}
`
	if err := os.WriteFile(filepath.Join(dir, "main.jsonnet"), []byte(consumer), 0o644); err != nil {
		t.Fatal(err)
	}
	out := run(t, dir, bin, "-J", "vendor", "main.jsonnet")
	var got struct {
		Alerts     ruleFile            `json:"alerts"`
		Rules      ruleFile            `json:"rules"`
		Dashboards map[string][]string `json:"dashboards"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Rules.Groups) == 0 || len(got.Alerts.Groups) == 0 || len(got.Dashboards) != 2 {
		t.Fatalf("got %d rule groups, %d alert groups, %d dashboards", len(got.Rules.Groups), len(got.Alerts.Groups), len(got.Dashboards))
	}
	if !strings.Contains(string(out), `job=\"my-forecaster\"`) {
		t.Error("the forecaster selector override did not reach the alerts")
	}
	for name, tags := range got.Dashboards {
		if !slices.Equal(tags, []string{"mine"}) {
			t.Errorf("dashboard %s tags %v, want the override", name, tags)
		}
	}
}

// TestJsonnetBundler installs the mixin with jb (built from mixins/tools, as
// make does) from a local source into a fresh project and imports it from there.
func TestJsonnetBundler(t *testing.T) {
	bin := jsonnetBin(t)
	if testing.Short() {
		t.Skip("builds jb; skipped with -short")
	}
	goBin := prereq.Program(t, "go")
	dir := t.TempDir()
	jb := filepath.Join(dir, "jb")
	run(t, "../tools", goBin, "build", "-o", jb, "github.com/jsonnet-bundler/jsonnet-bundler/cmd/jb")
	abs, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	project := filepath.Join(dir, "project")
	if err := os.MkdirAll(project, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, project, jb, "init")
	rel, err := filepath.Rel(project, abs)
	if err != nil {
		t.Fatal(err)
	}
	run(t, project, jb, "install", rel)
	if err := os.WriteFile(filepath.Join(project, "main.jsonnet"), []byte(
		"std.length((import 'kedastral/mixin.libsonnet').prometheusAlerts.groups)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := strings.TrimSpace(string(run(t, project, bin, "-J", "vendor", "main.jsonnet")))
	if out == "0" || out == "" {
		t.Fatalf("vendored mixin has %q alert groups", out)
	}
	lock, err := os.ReadFile(filepath.Join(project, "jsonnetfile.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(lock), fmt.Sprintf("%q", abs)) && !strings.Contains(string(lock), "local") {
		t.Errorf("jsonnetfile.json does not record the local source:\n%s", lock)
	}
}

// TestRunbook checks that runbook.md, which every alert links to, has a
// section for each alert.
func TestRunbook(t *testing.T) {
	b, err := os.ReadFile("runbook.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range readRules(t, "kedastral-alerts.yaml") {
		if !strings.Contains(string(b), "\n## "+r.Alert+"\n") {
			t.Errorf("runbook.md has no section ## %s", r.Alert)
		}
		if want := "runbook.md#" + strings.ToLower(r.Alert); !strings.HasSuffix(r.Annotations["runbook_url"], want) {
			t.Errorf("alert %s links to %s, want …%s", r.Alert, r.Annotations["runbook_url"], want)
		}
	}
}
