// Package ociimage builds Kedastral's container image without a container
// engine: the kedastral binary cross-compiled (CGO_ENABLED=0) for each
// platform, on an empty base that holds only CA certificates, /etc/passwd and
// /etc/group for the non-root user 65532, and /tmp; one multi-platform OCI
// image index written as an OCI image layout in a tar archive (what `podman
// load`, `docker load`, `ctr images import`, `skopeo copy oci-archive:` and
// `kind load image-archive` read). With the same sources, toolchain and
// Created time the archive is the same byte for byte.
package ociimage

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// The image's fixed parts; the chart's containers give only args, so the
// entrypoint is the binary.
const (
	Binary      = "/usr/bin/kedastral"
	User        = "65532:65532"
	CAFile      = "/etc/ssl/certs/ca-certificates.crt"
	Source      = "https://github.com/kedastral/kedastral"
	License     = "Apache-2.0"
	Title       = "kedastral"
	Description = "Predictive autoscaling for KEDA: forecasts demand from Prometheus history and tells KEDA the replicas it will need."
)

// Entrypoint and Cmd of every image: `docker run IMAGE` prints the help,
// `docker run IMAGE forecaster ...` runs a subcommand.
var (
	Entrypoint = []string{Binary}
	Cmd        = []string{"--help"}
)

// Platforms the image is built for by default.
var Platforms = []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}

// Options say what to build.
type Options struct {
	// RepoRoot is the directory of Kedastral's go.mod.
	RepoRoot string
	// Name is the image reference the archive names, e.g.
	// ghcr.io/kedastral/kedastral:0.1.0; its tag is the archive's ref.name.
	Name string
	// Version, Revision and Branch are linked into the binary (kedastral
	// version) and Version and Revision are labels.
	Version, Revision, Branch string
	// Created is the images' creation time (SOURCE_DATE_EPOCH), the time of
	// every file in the layers and of the archive's entries.
	Created time.Time
	// Platforms to build; Platforms when empty.
	Platforms []v1.Platform
	// Go is the go command; "go" when empty.
	Go string
	// Log receives one line per step; nil for none.
	Log io.Writer
}

// Labels are the org.opencontainers.image.* labels (and manifest
// annotations) of an image built with o.
func (o Options) Labels() map[string]string {
	return map[string]string{
		"org.opencontainers.image.source":      Source,
		"org.opencontainers.image.url":         Source,
		"org.opencontainers.image.version":     o.Version,
		"org.opencontainers.image.revision":    o.Revision,
		"org.opencontainers.image.created":     o.Created.UTC().Format(time.RFC3339),
		"org.opencontainers.image.licenses":    License,
		"org.opencontainers.image.title":       Title,
		"org.opencontainers.image.description": Description,
	}
}

func (o *Options) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, format+"\n", args...)
	}
}

// Build builds the image index: one image per platform.
func Build(ctx context.Context, o Options) (v1.ImageIndex, error) {
	if o.Version == "" {
		return nil, fmt.Errorf("ociimage: no version")
	}
	if o.Go == "" {
		o.Go = "go"
	}
	platforms := o.Platforms
	if len(platforms) == 0 {
		platforms = Platforms
	}
	base, err := baseLayer(o.Created)
	if err != nil {
		return nil, err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	idx = mutate.Annotations(idx, o.Labels()).(v1.ImageIndex)
	tmp, err := os.MkdirTemp("", "kedastral-image")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	for _, p := range platforms {
		bin := filepath.Join(tmp, p.OS+"-"+p.Architecture, "kedastral")
		o.logf("building kedastral %s for %s/%s…", o.Version, p.OS, p.Architecture)
		if err := o.compile(ctx, p, bin); err != nil {
			return nil, err
		}
		img, err := o.image(base, p, bin)
		if err != nil {
			return nil, fmt.Errorf("image for %s/%s: %w", p.OS, p.Architecture, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}},
		})
	}
	return idx, nil
}

// compile cross-compiles a static kedastral binary, as `make build` does but
// with the version from o, no symbol table and no build paths.
func (o *Options) compile(ctx context.Context, p v1.Platform, out string) error {
	ldflags := strings.Join([]string{"-s", "-w",
		"-X github.com/prometheus/common/version.Version=" + o.Version,
		"-X github.com/prometheus/common/version.Revision=" + o.Revision,
		"-X github.com/prometheus/common/version.Branch=" + o.Branch,
		"-X github.com/prometheus/common/version.BuildDate=" + o.Created.UTC().Format("20060102-15:04:05"),
	}, " ")
	cmd := exec.CommandContext(ctx, o.Go, "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", out, "./cmd/kedastral")
	cmd.Dir = o.RepoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture)
	if p.Variant != "" && p.Architecture == "arm" {
		cmd.Env = append(cmd.Env, "GOARM="+strings.TrimPrefix(p.Variant, "v"))
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build for %s/%s: %w\n%s", p.OS, p.Architecture, err, b)
	}
	return nil
}

func (o *Options) image(base v1.Layer, p v1.Platform, bin string) (v1.Image, error) {
	binLayer, err := binaryLayer(bin, o.Created)
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: o.Created.UTC()}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, MediaType: types.OCILayer, History: v1.History{
			Created: created, CreatedBy: "kedastral ociimage: CA certificates, /etc/passwd, /etc/group, /tmp", Comment: caComment}},
		mutate.Addendum{Layer: binLayer, MediaType: types.OCILayer, History: v1.History{
			Created: created, CreatedBy: "kedastral ociimage: CGO_ENABLED=0 go build -trimpath ./cmd/kedastral → " + Binary}},
	)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Created = created
	cf.Author = ""
	cf.Config = v1.Config{
		Entrypoint: Entrypoint,
		Cmd:        Cmd,
		User:       User,
		WorkingDir: "/",
		Env:        []string{"PATH=/usr/local/bin:/usr/bin:/bin"},
		Labels:     o.Labels(),
		// forecaster web, scaler web, scaler gRPC
		ExposedPorts: map[string]struct{}{"8080/tcp": {}, "8081/tcp": {}, "50051/tcp": {}},
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	return mutate.Annotations(img, o.Labels()).(v1.Image), nil
}

const caComment = "CA certificates: the Mozilla NSS roots of golang.org/x/crypto/x509roots/fallback/bundle (go.sum pins them), without the roots NSS constrains (a PEM file cannot carry a distrust-after date)"

// CABundle returns the PEM bundle the image holds: the unconstrained roots
// of golang.org/x/crypto/x509roots/fallback/bundle.
func CABundle() []byte {
	var b bytes.Buffer
	for r := range bundle.Roots() {
		if r.Constraint != nil {
			continue
		}
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: r.Certificate})
	}
	return b.Bytes()
}

// Passwd and Group hold root and the non-root user 65532 (named nonroot, as
// in distroless).
const (
	Passwd = "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	Group  = "root:x:0:\nnonroot:x:65532:\n"
)

type entry struct {
	name string
	mode int64
	uid  int
	data []byte
	dir  bool
}

func baseLayer(mtime time.Time) (v1.Layer, error) {
	return layer(mtime, []entry{
		{name: "etc/", dir: true, mode: 0o755},
		{name: "etc/group", mode: 0o644, data: []byte(Group)},
		{name: "etc/passwd", mode: 0o644, data: []byte(Passwd)},
		{name: "etc/ssl/", dir: true, mode: 0o755},
		{name: "etc/ssl/certs/", dir: true, mode: 0o755},
		{name: strings.TrimPrefix(CAFile, "/"), mode: 0o644, data: CABundle()},
		{name: "home/", dir: true, mode: 0o755},
		{name: "home/nonroot/", dir: true, mode: 0o700, uid: 65532},
		{name: "tmp/", dir: true, mode: 0o1777},
	})
}

func binaryLayer(bin string, mtime time.Time) (v1.Layer, error) {
	b, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	return layer(mtime, []entry{
		{name: "usr/", dir: true, mode: 0o755},
		{name: "usr/bin/", dir: true, mode: 0o755},
		{name: strings.TrimPrefix(Binary, "/"), mode: 0o755, data: b},
	})
}

// layer writes entries into an uncompressed tar, every entry with mtime;
// ggcr gzips it (deterministically: no name or time in the gzip header).
func layer(mtime time.Time, entries []entry) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, ModTime: mtime.UTC(), Uid: e.uid, Gid: e.uid, Format: tar.FormatPAX}
		if e.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
}

// WriteArchive writes idx as an OCI image layout in a tar file: index.json
// names idx with the annotations BuildKit's OCI exporter sets
// (io.containerd.image.name = name, org.opencontainers.image.ref.name = its
// tag), every entry stamped with mtime.
func WriteArchive(file, name string, idx v1.ImageIndex, mtime time.Time) error {
	dir, err := os.MkdirTemp("", "kedastral-oci-layout")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	anns := map[string]string{"io.containerd.image.name": name}
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		anns["org.opencontainers.image.ref.name"] = name[i+1:]
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(anns)); err != nil {
		return fmt.Errorf("write OCI layout: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	tmp := file + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := tarDir(f, dir, mtime); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}

// tarDir writes dir's tree in name order with fixed owners, modes and times.
func tarDir(w io.Writer, dir string, mtime time.Time) error {
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			rel += "/"
		}
		names = append(names, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(names)
	tw := tar.NewWriter(w)
	for _, n := range names {
		h := &tar.Header{Name: n, ModTime: mtime.UTC(), Format: tar.FormatPAX}
		if strings.HasSuffix(n, "/") {
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(n)))
		if err != nil {
			return err
		}
		h.Typeflag, h.Mode, h.Size = tar.TypeReg, 0o644, int64(len(b))
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
	}
	return tw.Close()
}
