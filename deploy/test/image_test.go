package deploytest

import (
	"archive/tar"
	"bytes"
	"crypto/x509"
	"debug/elf"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kedastral/kedastral/deploy/test/ociimage"
)

// elfMachine is the ELF machine of each architecture the image is built for.
var elfMachine = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// makeImage runs `make image` as a user does, into archive.
func makeImage(t *testing.T, archive string, epoch int64) []byte {
	t.Helper()
	cmd := command(repoRoot, "make", "image", "IMAGE_ARCHIVE="+archive, "SOURCE_DATE_EPOCH="+strconv.FormatInt(epoch, 10))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	return out
}

// TestImage builds the image archive with `make image`, opens it with
// go-containerregistry and checks what the chart relies on: the index has
// linux/amd64 and linux/arm64, each image runs the static kedastral binary of
// its architecture as user 65532 with the org.opencontainers.image labels,
// the archive names the chart's default image, the binary of this machine's
// architecture taken from the layers says the version, and a second build
// with the same SOURCE_DATE_EPOCH is the same archive byte for byte.
func TestImage(t *testing.T) {
	version := readVersion(t)
	rev, err := run(repoRoot, "git", "rev-parse", "HEAD")
	if err != nil {
		t.Fatal(err)
	}
	revision := strings.TrimSpace(string(rev))
	const epoch = 1767225600 // 2026-01-01T00:00:00Z
	created := time.Unix(epoch, 0).UTC()
	archive := filepath.Join(t.TempDir(), "kedastral.oci.tar")
	out := makeImage(t, archive, epoch)
	for _, want := range []string{"wrote " + archive, "kind load image-archive " + archive, "skopeo copy --all oci-archive:" + archive} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("make image does not say %q:\n%s", want, out)
		}
	}

	dir := untar(t, archive)
	root, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatalf("open the archive as an OCI layout: %v", err)
	}
	rm, err := root.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(rm.Manifests) != 1 || rm.Manifests[0].MediaType != types.OCIImageIndex {
		t.Fatalf("index.json: want one OCI image index, got %+v", rm.Manifests)
	}
	wantName := chartDefaultImage(t)
	if got := rm.Manifests[0].Annotations["io.containerd.image.name"]; got != wantName {
		t.Errorf("archive names %q, the chart's default image is %q", got, wantName)
	}
	if got := rm.Manifests[0].Annotations["org.opencontainers.image.ref.name"]; got != version {
		t.Errorf("org.opencontainers.image.ref.name %q, want the tag %q", got, version)
	}
	idx, err := root.ImageIndex(rm.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	wantLabels := map[string]string{
		"org.opencontainers.image.source":      "https://github.com/kedastral/kedastral",
		"org.opencontainers.image.version":     version,
		"org.opencontainers.image.revision":    revision,
		"org.opencontainers.image.created":     created.Format(time.RFC3339),
		"org.opencontainers.image.licenses":    "Apache-2.0",
		"org.opencontainers.image.title":       "kedastral",
		"org.opencontainers.image.description": ociimage.Description,
	}
	checkLabels(t, "the index's annotations", im.Annotations, wantLabels)
	var platforms []string
	ran := false
	for _, d := range im.Manifests {
		if d.Platform == nil {
			t.Errorf("manifest %s has no platform", d.Digest)
			continue
		}
		p := d.Platform.OS + "/" + d.Platform.Architecture
		platforms = append(platforms, p)
		t.Run(p, func(t *testing.T) {
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.OS != d.Platform.OS || cf.Architecture != d.Platform.Architecture {
				t.Errorf("config says %s/%s, the index %s", cf.OS, cf.Architecture, p)
			}
			if !slices.Equal(cf.Config.Entrypoint, []string{"/usr/bin/kedastral"}) {
				t.Errorf("entrypoint %q, want [/usr/bin/kedastral] (the chart gives only args)", cf.Config.Entrypoint)
			}
			if u := cf.Config.User; u != "65532" && u != "65532:65532" {
				t.Errorf("user %q, want 65532", u)
			}
			if !cf.Created.Time.Equal(created) {
				t.Errorf("created %v, want SOURCE_DATE_EPOCH %v", cf.Created.Time, created)
			}
			checkLabels(t, "labels", cf.Config.Labels, wantLabels)
			m, err := img.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			checkLabels(t, "manifest annotations", m.Annotations, wantLabels)
			if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON {
				t.Errorf("media types %s, %s; want OCI's", m.MediaType, m.Config.MediaType)
			}

			files := extract(t, img)
			bin, ok := files["usr/bin/kedastral"]
			if !ok {
				t.Fatalf("no /usr/bin/kedastral in the layers; files: %v", fileNames(files))
			}
			if bin.hdr.Mode&0o111 == 0 {
				t.Errorf("/usr/bin/kedastral mode %o is not executable", bin.hdr.Mode)
			}
			f, err := elf.NewFile(bytes.NewReader(bin.data))
			if err != nil {
				t.Fatalf("/usr/bin/kedastral: %v", err)
			}
			if want, ok := elfMachine[cf.Architecture]; !ok || f.Machine != want {
				t.Errorf("/usr/bin/kedastral is %v, the config says %s (want %v)", f.Machine, cf.Architecture, want)
			}
			for _, prog := range f.Progs {
				if prog.Type == elf.PT_INTERP {
					t.Error("/usr/bin/kedastral is dynamically linked; the image has no libc")
				}
			}
			if p := files["etc/passwd"]; !bytes.Contains(p.data, []byte(":x:65532:65532:")) {
				t.Errorf("/etc/passwd has no user 65532:\n%s", p.data)
			}
			if g := files["etc/group"]; !bytes.Contains(g.data, []byte(":x:65532:")) {
				t.Errorf("/etc/group has no group 65532:\n%s", g.data)
			}
			pool := x509.NewCertPool()
			if ca := files["etc/ssl/certs/ca-certificates.crt"]; !pool.AppendCertsFromPEM(ca.data) || len(bytes.Split(ca.data, []byte("BEGIN CERTIFICATE"))) < 100 {
				t.Errorf("/etc/ssl/certs/ca-certificates.crt holds no bundle of CA certificates (%d bytes)", len(ca.data))
			}
			if tmp, ok := files["tmp"]; !ok || tmp.hdr.Mode&0o1777 != 0o1777 {
				t.Errorf("/tmp missing or not mode 1777")
			}
			for name, f := range files {
				if !f.hdr.ModTime.Equal(created) {
					t.Errorf("%s has time %v, want SOURCE_DATE_EPOCH %v", name, f.hdr.ModTime, created)
				}
			}

			if cf.Architecture != runtime.GOARCH {
				return
			}
			ran = true
			exe := filepath.Join(t.TempDir(), "kedastral")
			if err := os.WriteFile(exe, bin.data, 0o755); err != nil {
				t.Fatal(err)
			}
			out, err := run(".", exe, "version")
			if err != nil {
				t.Fatal(err)
			}
			want := "kedastral, version " + version + " (branch: "
			if !bytes.HasPrefix(out, []byte(want)) || !bytes.Contains(out, []byte("revision: "+revision+")")) {
				t.Errorf("kedastral version from the image says:\n%s\nwant %q… and revision %s", out, want, revision)
			}
			// The chart runs the binary with a subcommand as its first argument.
			help, err := run(".", exe, "--help")
			if err != nil {
				t.Fatal(err)
			}
			for _, sub := range chartSubcommands(t) {
				if !bytes.Contains(help, []byte("\n  "+sub+" ")) {
					t.Errorf("the chart runs subcommand %q, the image's kedastral --help does not list it:\n%s", sub, help)
				}
			}
		})
	}
	slices.Sort(platforms)
	if !slices.Equal(platforms, []string{"linux/amd64", "linux/arm64"}) {
		t.Errorf("index has %v, want linux/amd64 and linux/arm64", platforms)
	}
	if !ran {
		t.Errorf("no image for this machine's architecture %s: no binary was run", runtime.GOARCH)
	}

	again := filepath.Join(t.TempDir(), "again.oci.tar")
	makeImage(t, again, epoch)
	a, _ := os.ReadFile(archive)
	b, _ := os.ReadFile(again)
	if !bytes.Equal(a, b) {
		t.Errorf("two builds with SOURCE_DATE_EPOCH=%d differ (%d and %d bytes)", epoch, len(a), len(b))
	}
}

func checkLabels(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s=%q, want %q", what, k, got[k], v)
		}
	}
}

// untar unpacks an archive into a new directory.
func untar(t *testing.T, archive string) string {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dir := t.TempDir()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return dir
		}
		if err != nil {
			t.Fatalf("%s: %v", archive, err)
		}
		if !filepath.IsLocal(h.Name) {
			t.Fatalf("%s: entry %q leaves the directory", archive, h.Name)
		}
		p := filepath.Join(dir, h.Name)
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o755)
		case tar.TypeReg:
			var b []byte
			if b, err = io.ReadAll(tr); err == nil {
				if err = os.MkdirAll(filepath.Dir(p), 0o755); err == nil {
					err = os.WriteFile(p, b, 0o644)
				}
			}
		default:
			t.Fatalf("%s: entry %q of type %c", archive, h.Name, h.Typeflag)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

type file struct {
	hdr  *tar.Header
	data []byte
}

// extract reads the image's flattened file system.
func extract(t *testing.T, img v1.Image) map[string]file {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string]file{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = file{h, b}
	}
}

func fileNames(m map[string]file) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// chartDefaultImage is the image of the chart's containers with its default values.
func chartDefaultImage(t *testing.T) string {
	t.Helper()
	var img string
	for _, o := range renderObjects(t, chartCase{name: "default"}) {
		for _, c := range containers(o) {
			i, _ := c["image"].(string)
			if img != "" && i != img {
				t.Errorf("the chart's containers run %q and %q", img, i)
			}
			img = i
		}
	}
	if img == "" {
		t.Fatal("no container in the chart's default render")
	}
	return img
}

// chartSubcommands are the first args of the chart's containers, which set
// no command (the image's entrypoint runs).
func chartSubcommands(t *testing.T) []string {
	t.Helper()
	var subs []string
	for _, o := range renderObjects(t, chartCase{name: "all-values"}) {
		for _, c := range containers(o) {
			if c["command"] != nil {
				t.Errorf("%s %s sets command %v; the image's entrypoint is the binary", o.kind(), o.name(), c["command"])
			}
			var args []string
			l, _ := c["args"].([]any)
			for _, a := range l {
				args = append(args, a.(string))
			}
			if len(args) == 0 || strings.HasPrefix(args[0], "-") {
				t.Errorf("%s %s: args %q do not start with a subcommand", o.kind(), o.name(), args)
				continue
			}
			subs = append(subs, args[0])
		}
	}
	return subs
}
