// Package docs_test checks the documentation: README.md stays a front door
// (at most maxReadmeLines lines), every relative link of README.md, docs/*.md
// and the components' READMEs reaches an existing file (and heading, when it
// names one), every page of docs/ is in the index docs/README.md, and every
// PromQL example parses.
package docs_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"

	"github.com/kedastral/kedastral/engine/policy"
)

const (
	repoRoot       = "../.."
	maxReadmeLines = 200
)

// page is a Markdown file, read outside its code: links, headings and the
// fenced code blocks.
type page struct {
	path     string // relative to the repository root, slash-separated
	lines    int
	links    []link
	headings []string
	blocks   []block
}

type link struct {
	line   int
	target string
}

type block struct {
	line int
	lang string
	text []string
}

var (
	linkRE       = regexp.MustCompile(`\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	codeSpanRE   = regexp.MustCompile("`[^`]*`")
	fenceRE      = regexp.MustCompile("^\\s*(```+|~~~+)\\s*([\\w-]*)")
	headingRE    = regexp.MustCompile(`^(#{1,6})\s+(.*?)\s*#*\s*$`)
	linkInTextRE = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)
)

func readPage(t *testing.T, rel string) *page {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := &page{path: rel}
	var fence string
	var cur *block
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		p.lines++
		l := sc.Text()
		if m := fenceRE.FindStringSubmatch(l); m != nil {
			switch {
			case fence == "":
				fence = m[1][:3]
				cur = &block{line: p.lines, lang: m[2]}
				continue
			case strings.HasPrefix(m[1], fence) && m[2] == "":
				fence = ""
				p.blocks = append(p.blocks, *cur)
				continue
			}
		}
		if fence != "" {
			cur.text = append(cur.text, l)
			continue
		}
		if m := headingRE.FindStringSubmatch(l); m != nil {
			p.headings = append(p.headings, m[2])
		}
		for _, m := range linkRE.FindAllStringSubmatch(codeSpanRE.ReplaceAllString(l, "``"), -1) {
			p.links = append(p.links, link{line: p.lines, target: m[1]})
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	if fence != "" {
		t.Errorf("%s:%d: code block never closed", rel, cur.line)
	}
	return p
}

// slug is the anchor GitHub gives a heading: lower case, punctuation
// dropped (but - and _), spaces turned into hyphens.
func slug(heading string) string {
	heading = linkInTextRE.ReplaceAllString(heading, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// anchors are the anchors of a page's headings; a repeated heading gets -1,
// -2... as on GitHub.
func (p *page) anchors() map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	for _, h := range p.headings {
		s := slug(h)
		if n := seen[s]; n > 0 {
			out[fmt.Sprintf("%s-%d", s, n)] = true
		} else {
			out[s] = true
		}
		seen[s]++
	}
	return out
}

// componentPages are the READMEs of parts of the repository that the docs
// link to and that link back; their links are checked too.
var componentPages = []string{"mixins/kedastral/README.md", "mixins/kedastral/runbook.md", "deploy/helm/kedastral/README.md"}

// docPages are README.md and every Markdown file under docs/.
func docPages(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no pages under docs/: %v", err)
	}
	out := []string{"README.md"}
	for _, f := range files {
		out = append(out, "docs/"+filepath.Base(f))
	}
	return out
}

func TestReadmeLength(t *testing.T) {
	p := readPage(t, "README.md")
	if p.lines > maxReadmeLines {
		t.Errorf("README.md has %d lines, at most %d: move the details into docs/", p.lines, maxReadmeLines)
	}
}

func TestLinks(t *testing.T) {
	pages := map[string]*page{}
	get := func(rel string) *page {
		if p, ok := pages[rel]; ok {
			return p
		}
		p := readPage(t, rel)
		pages[rel] = p
		return p
	}
	checked := 0
	for _, rel := range append(docPages(t), componentPages...) {
		p := get(rel)
		for _, l := range p.links {
			if strings.Contains(l.target, "://") || strings.HasPrefix(l.target, "mailto:") {
				continue
			}
			where := fmt.Sprintf("%s:%d: link %s", rel, l.line, l.target)
			file, anchor, _ := strings.Cut(l.target, "#")
			target := rel
			if file != "" {
				target = filepath.ToSlash(filepath.Clean(filepath.Join(filepath.Dir(rel), file)))
			}
			if strings.HasPrefix(target, "../") {
				t.Errorf("%s: leaves the repository", where)
				continue
			}
			checked++
			st, err := os.Stat(filepath.Join(repoRoot, filepath.FromSlash(target)))
			if err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			if anchor == "" {
				continue
			}
			if st.IsDir() || !strings.HasSuffix(target, ".md") {
				t.Errorf("%s: an anchor into %s, which is not a Markdown page", where, target)
				continue
			}
			if a := get(target).anchors(); !a[anchor] {
				t.Errorf("%s: %s has no heading with anchor #%s", where, target, anchor)
			}
		}
	}
	if checked < 50 {
		t.Errorf("only %d relative links checked", checked)
	}
}

// TestIndex checks that docs/README.md links every page of docs/ and every
// page that other branches add.
func TestIndex(t *testing.T) {
	index := readPage(t, "docs/README.md")
	linked := map[string]bool{}
	for _, l := range index.links {
		file, _, _ := strings.Cut(l.target, "#")
		linked[filepath.ToSlash(filepath.Clean(filepath.Join("docs", file)))] = true
	}
	for _, rel := range docPages(t) {
		if rel == "README.md" || rel == "docs/README.md" {
			continue
		}
		if !linked[rel] {
			t.Errorf("docs/README.md does not link %s", rel)
		}
	}
}

// TestPromQLExamples parses every line of every promql code block with the
// forecaster's own parser: each is one expression returning a vector (a #
// comment may follow it).
func TestPromQLExamples(t *testing.T) {
	n := 0
	for _, rel := range docPages(t) {
		for _, b := range readPage(t, rel).blocks {
			if b.lang != "promql" {
				continue
			}
			for i, l := range b.text {
				if strings.TrimSpace(l) == "" || strings.HasPrefix(strings.TrimSpace(l), "#") {
					continue
				}
				n++
				if _, err := policy.ParseQuery(l); err != nil {
					t.Errorf("%s:%d: %s: %v", rel, b.line+1+i, l, err)
				}
			}
		}
	}
	if n == 0 {
		t.Error("no PromQL examples found")
	}
}

func TestSlug(t *testing.T) {
	for _, tc := range []struct{ heading, want string }{
		{"Under-provisioning: `kedastral_underprovision_seconds_total`", "under-provisioning-kedastral_underprovision_seconds_total"},
		{"`byom`: bring your own model", "byom-bring-your-own-model"},
		{"The ScaledObject, generated", "the-scaledobject-generated"},
		{"1. Install without the trigger", "1-install-without-the-trigger"},
		{"See [the forecaster](forecaster.md)", "see-the-forecaster"},
	} {
		if got := slug(tc.heading); got != tc.want {
			t.Errorf("slug(%q) = %q, want %q", tc.heading, got, tc.want)
		}
	}
}
