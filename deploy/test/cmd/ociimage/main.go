// Command ociimage writes Kedastral's multi-platform image as an OCI image
// archive without a container engine (make image). The images' creation time
// is $SOURCE_DATE_EPOCH (seconds since 1970), or now when it is not set; with
// it set, the same sources and toolchain give the same archive.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kedastral/kedastral/deploy/test/ociimage"
)

func main() {
	os.Exit(run())
}

func run() int {
	var (
		name      = flag.String("name", "", "Image reference the archive names, e.g. ghcr.io/kedastral/kedastral:0.1.0 (required).")
		out       = flag.String("out", "", "Archive to write, e.g. dist/kedastral-0.1.0.oci.tar (required).")
		version   = flag.String("version", "", "Version linked into the binary and labelled (required).")
		revision  = flag.String("revision", "", "Git revision linked into the binary and labelled.")
		branch    = flag.String("branch", "", "Git branch linked into the binary.")
		repoRoot  = flag.String("repo-root", "../..", "Directory of Kedastral's go.mod.")
		platforms = flag.String("platforms", "linux/amd64,linux/arm64", "Comma-separated OS/ARCH[/VARIANT] list.")
	)
	flag.Parse()
	for f, v := range map[string]string{"name": *name, "out": *out, "version": *version} {
		if v == "" {
			fmt.Fprintf(os.Stderr, "ociimage: -%s is required\n", f)
			return 2
		}
	}
	created := time.Now().UTC().Truncate(time.Second)
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			fmt.Fprintf(os.Stderr, "ociimage: SOURCE_DATE_EPOCH=%q is not a number of seconds: %v\n", s, err)
			return 2
		}
		created = time.Unix(sec, 0).UTC()
	}
	var plats []v1.Platform
	for _, s := range strings.Split(*platforms, ",") {
		p, err := v1.ParsePlatform(strings.TrimSpace(s))
		if err != nil || p.OS == "" || p.Architecture == "" {
			fmt.Fprintf(os.Stderr, "ociimage: -platforms: %q is not OS/ARCH[/VARIANT]\n", s)
			return 2
		}
		plats = append(plats, *p)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	opts := ociimage.Options{
		RepoRoot: *repoRoot, Name: *name, Version: *version, Revision: *revision, Branch: *branch,
		Created: created, Platforms: plats, Log: os.Stdout,
	}
	idx, err := ociimage.Build(ctx, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ociimage:", err)
		return 1
	}
	fmt.Printf("writing %s…\n", *out)
	if err := ociimage.WriteArchive(*out, *name, idx, created); err != nil {
		fmt.Fprintln(os.Stderr, "ociimage:", err)
		return 1
	}
	d, err := idx.Digest()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ociimage:", err)
		return 1
	}
	abs, _ := filepath.Abs(*out)
	tag := (*name)[strings.LastIndex(*name, ":")+1:]
	fmt.Printf(`wrote %s: %s@%s (%s, created %s)
load it (docs/image.md):
  kind load image-archive %s
  docker load -i %s            # Docker with the containerd image store
  podman load -i %s
  ctr -n k8s.io images import --all-platforms %s
push it:
  skopeo copy --all oci-archive:%s:%s docker://REGISTRY/kedastral:%s
`, *out, *name, d, *platforms, created.Format(time.RFC3339),
		abs, abs, abs, abs, abs, tag, tag)
	return 0
}
