package deploytest

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// semver is a release version as VERSION holds it: X.Y.Z with an optional
// pre-release, no leading v (the git tag is v<VERSION>).
var semver = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$`)

// readVersion reads the one source of the version, the file deploy/VERSION.
func readVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	v := strings.TrimSpace(string(b))
	if !semver.MatchString(v) {
		t.Fatalf("VERSION holds %q, want a semantic version X.Y.Z without a v", v)
	}
	return v
}

// TestVersionsAgree: the chart's version and appVersion and the newest release
// in CHANGELOG.md are the version in VERSION, and the kustomize overlays run
// the image of that version.
func TestVersionsAgree(t *testing.T) {
	version := readVersion(t)
	b, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var chart struct {
		Version    string `json:"version"`
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(b, &chart); err != nil {
		t.Fatalf("Chart.yaml: %v", err)
	}
	if chart.AppVersion != version {
		t.Errorf("Chart.yaml appVersion %q, VERSION %q", chart.AppVersion, version)
	}
	if chart.Version != version {
		t.Errorf("Chart.yaml version %q, VERSION %q", chart.Version, version)
	}

	b, err = os.ReadFile(filepath.Join(repoRoot, "CHANGELOG.md"))
	if err != nil {
		t.Fatal(err)
	}
	heading := regexp.MustCompile(`(?m)^## \[([^\]]+)\](?: - (\d{4}-\d{2}-\d{2}))?\s*$`)
	var newest, date string
	for _, m := range heading.FindAllStringSubmatch(string(b), -1) {
		if m[1] == "Unreleased" {
			continue
		}
		newest, date = m[1], m[2]
		break
	}
	if newest != version {
		t.Errorf("CHANGELOG.md's newest release is %q, VERSION %q", newest, version)
	}
	if date == "" {
		t.Errorf("CHANGELOG.md's release %s has no date (## [%s] - YYYY-MM-DD)", newest, newest)
	}
	if !strings.Contains(string(b), "\n["+version+"]: ") {
		t.Errorf("CHANGELOG.md has no link [%s]: for its release", version)
	}

	overlays, _ := filepath.Glob(filepath.Join(kustomize, "overlays", "*", "kustomization.yaml"))
	if len(overlays) == 0 {
		t.Fatal("no kustomize overlays")
	}
	for _, k := range overlays {
		dir := filepath.Dir(k)
		for _, d := range splitYAML(t, kustomizeBuild(t, dir)) {
			for _, c := range containers(d) {
				if img := c["image"]; img != "ghcr.io/kedastral/kedastral:"+version {
					t.Errorf("%s: %s %s runs %v, want ghcr.io/kedastral/kedastral:%s", dir, d.kind(), d.name(), img, version)
				}
			}
		}
	}
}
