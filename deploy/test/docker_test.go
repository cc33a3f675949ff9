package deploytest

import (
	"bufio"
	"bytes"
	"debug/elf"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// TestDockerfile checks what can be checked without a Docker engine: the Go
// version matches go.mod's toolchain, the final image is distroless or scratch and runs as
// a non-root user, and the build command of the Dockerfile, run in a copy of
// the build context that Dockerfile.dockerignore leaves, gives a static binary
// whose subcommands the chart uses.
func TestDockerfile(t *testing.T) {
	df, err := os.ReadFile(filepath.Join(deployDir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	// The toolchain go.mod names (its go line when it names none).
	goVersion := regexp.MustCompile(`(?m)^toolchain go(\S+)$`).FindSubmatch(gomod)
	if goVersion == nil {
		goVersion = regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(gomod)
	}
	argVersion := regexp.MustCompile(`(?m)^ARG GO_VERSION=(\S+)$`).FindSubmatch(df)
	if goVersion == nil || argVersion == nil || string(goVersion[1]) != string(argVersion[1]) {
		t.Errorf("Dockerfile's ARG GO_VERSION %q does not match go.mod's toolchain %q", argVersion, goVersion)
	}
	froms := regexp.MustCompile(`(?m)^FROM (.+)$`).FindAllSubmatch(df, -1)
	if len(froms) < 2 {
		t.Fatalf("want a multi-stage build, got %d FROM lines", len(froms))
	}
	final := string(froms[len(froms)-1][1])
	if !strings.HasPrefix(final, "gcr.io/distroless/static") && final != "scratch" {
		t.Errorf("final stage is %q, want distroless static or scratch", final)
	}
	user := regexp.MustCompile(`(?m)^USER (\S+)$`).FindAllSubmatch(df, -1)
	if len(user) == 0 || strings.HasPrefix(string(user[len(user)-1][1]), "0") || string(user[len(user)-1][1]) == "root" {
		t.Errorf("the image must run as a non-root user, got USER %q", user)
	}
	if !bytes.Contains(df, []byte("CGO_ENABLED=0")) {
		t.Error("the build is not static (CGO_ENABLED=0)")
	}

	// BuildKit's own parser and linter (the checks of docker build --check
	// that need no daemon).
	ast, err := parser.Parse(bytes.NewReader(df))
	if err != nil {
		t.Fatalf("parse Dockerfile: %v", err)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, desc, url, msg string, loc []parser.Range) {
		t.Errorf("Dockerfile lint %s: %s (%s)", rule, msg, url)
	}})
	stages, _, err := instructions.Parse(ast.AST, lint)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	last := stages[len(stages)-1]
	var lastUser string
	for _, c := range last.Commands {
		if u, ok := c.(*instructions.UserCommand); ok {
			lastUser = u.User
		}
	}
	if lastUser == "" || lastUser == "root" || strings.HasPrefix(lastUser, "0") {
		t.Errorf("final stage %s runs as %q, want a non-root user", last.BaseName, lastUser)
	}

	// The build context: the repository minus Dockerfile.dockerignore.
	ignore := dockerignore(t, filepath.Join(deployDir, "Dockerfile.dockerignore"))
	ctx := t.TempDir()
	root, _ := filepath.Abs(repoRoot)
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		if ignored(ignore, filepath.ToSlash(rel)) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		dst := filepath.Join(ctx, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "kedastral")
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w", "-o", bin, "./cmd/kedastral")
	cmd.Dir = ctx
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build in the Docker build context: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary is dynamically linked (has PT_INTERP); distroless/static cannot run it")
		}
	}
	out, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("kedastral --help: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("forecaster")) {
		t.Errorf("kedastral --help does not list the forecaster:\n%s", out)
	}
}

func dockerignore(t *testing.T, file string) []string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var pats []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		l := strings.TrimSpace(s.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasPrefix(l, "!") {
			t.Fatalf("%s: exceptions (!) are not supported by this test", file)
		}
		pats = append(pats, strings.Trim(l, "/"))
	}
	return pats
}

// ignored matches a slash-separated path against .dockerignore patterns
// (filepath.Match, with a leading **/ matching at any depth).
func ignored(pats []string, rel string) bool {
	parts := strings.Split(rel, "/")
	for _, p := range pats {
		if rest, ok := strings.CutPrefix(p, "**/"); ok {
			for i := range parts {
				if m, _ := filepath.Match(rest, strings.Join(parts[i:], "/")); m {
					return true
				}
			}
			continue
		}
		if m, _ := filepath.Match(p, rel); m {
			return true
		}
	}
	return false
}
