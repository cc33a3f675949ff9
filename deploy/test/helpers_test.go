package deploytest

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/kedastral/kedastral/deploy/test/kubeschema"
	"github.com/kedastral/kedastral/test/prereq"
)

var update = flag.Bool("update", false, "Rewrite the golden files (CRDs, values schema, rendered chart, kustomize base) instead of comparing.")

// Paths relative to this package's directory.
const (
	repoRoot    = "../.."
	deployDir   = ".."
	chartDir    = "../helm/kedastral"
	crdsDir     = "../crds"
	examplesDir = "../examples"
	kustomize   = "../kustomize"
	mixinOut    = "../../mixins/kedastral/out"
)

var tmpDir string

func TestMain(m *testing.M) {
	flag.Parse()
	var err error
	tmpDir, err = os.MkdirTemp("", "kedastral-deploy-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(tmpDir)
	os.Exit(code)
}

func helm(t *testing.T) string { return prereq.Program(t, "helm") }

func kubeconformBin(t *testing.T) string { return prereq.Program(t, "kubeconform") }

// run runs a command and returns its standard output; on failure the error
// holds standard error.
func run(dir, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %w\n%s%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String(), stdout.String())
	}
	return stdout.Bytes(), nil
}

var (
	schemasOnce sync.Once
	schemasDir  string
	schemasErr  error
)

// schemas builds kubeconform's schemas once per test binary.
func schemas(t *testing.T) string {
	t.Helper()
	schemasOnce.Do(func() {
		schemasDir = filepath.Join(tmpDir, "schemas")
		crds, _ := filepath.Glob(filepath.Join(crdsDir, "kedastral.io_*.yaml"))
		schemasErr = kubeschema.Build(schemasDir, crds...)
	})
	if schemasErr != nil {
		if strings.Contains(schemasErr.Error(), "go mod download") {
			prereq.Missing(t, fmt.Sprintf("the schemas' source modules (%v)", schemasErr))
		}
		t.Fatal(schemasErr)
	}
	return schemasDir
}

// kubeconform validates files (or "-" with stdin) strictly against the
// offline schemas; every kind must have a schema.
func kubeconform(t *testing.T, stdin []byte, files ...string) {
	t.Helper()
	bin := kubeconformBin(t)
	dir := schemas(t)
	args := append([]string{"-strict", "-summary", "-output", "text",
		"-schema-location", dir + "/" + kubeschema.Template}, files...)
	cmd := exec.Command(bin, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubeconform: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("Invalid: 0, Errors: 0, Skipped: 0")) {
		t.Fatalf("kubeconform did not validate everything:\n%s", out)
	}
	t.Logf("kubeconform: %s", bytes.TrimSpace(out))
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// kedastral builds the kedastral binary from ../../cmd/kedastral once.
func kedastral(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binPath = filepath.Join(tmpDir, "kedastral")
		_, binErr = run(repoRoot, "go", "build", "-o", binPath, "./cmd/kedastral")
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// object is one decoded manifest.
type object map[string]any

func (o object) kind() string { s, _ := o["kind"].(string); return s }
func (o object) name() string {
	md, _ := o["metadata"].(map[string]any)
	s, _ := md["name"].(string)
	return s
}

// path returns the value at a dotted path of map keys.
func (o object) path(keys ...string) any {
	var v any = map[string]any(o)
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// splitYAML decodes a multi-document YAML stream, skipping empty documents.
func splitYAML(t *testing.T, data []byte) []object {
	t.Helper()
	var out []object
	for _, doc := range splitDocs(data) {
		var o object
		if err := yaml.Unmarshal(doc, &o); err != nil {
			t.Fatalf("decode manifest: %v\n%s", err, doc)
		}
		if len(o) > 0 {
			out = append(out, o)
		}
	}
	return out
}

func splitDocs(data []byte) [][]byte {
	var docs [][]byte
	var cur []byte
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		if bytes.Equal(bytes.TrimRight(line, " \r\n"), []byte("---")) {
			docs = append(docs, cur)
			cur = nil
			continue
		}
		cur = append(cur, line...)
	}
	return append(docs, cur)
}

// golden compares got with testdata/name, or writes it with -update.
func golden(t *testing.T, file string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s does not exist; run go test in deploy/test with -update", file)
	}
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is out of date; run make crds chart kustomize (go test -update in deploy/test) and review the diff.\n%s", file, diff(want, got))
	}
}

// diff shows the first differing lines.
func diff(want, got []byte) string {
	wl := strings.Split(string(want), "\n")
	gl := strings.Split(string(got), "\n")
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return fmt.Sprintf("first difference at line %d:\n  want: %q\n  got:  %q", i+1, w, g)
		}
	}
	return ""
}

func command(dir, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	return cmd
}
