package testutil

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Headless renders an HTML page in headless Chromium, with no network
// of its own (no component updates, sync or QUIC), and returns its DOM after
// its scripts ran and a screenshot of width×height pixels. Without Chromium
// the test fails, naming it.
func Headless(tb testing.TB, html []byte, width, height int) (dom []byte, shot image.Image) {
	tb.Helper()
	var bin string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		tb.Fatal("no chromium in PATH (Debian: apt-get install chromium): the page cannot be checked in a browser")
	}
	if s := string(html); strings.Contains(s, "<script src") || strings.Contains(s, "<link") {
		tb.Fatal("the page loads something from elsewhere")
	}
	dir := tb.TempDir()
	page := filepath.Join(dir, "page.html")
	if err := os.WriteFile(page, html, 0o644); err != nil {
		tb.Fatal(err)
	}
	run := func(args ...string) []byte {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		args = append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--user-data-dir=" + filepath.Join(dir, "profile")}, args...)
		cmd := exec.CommandContext(ctx, bin, append(args, "file://"+page)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			tb.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
		}
		return out
	}
	dom = run("--dump-dom")
	file := filepath.Join(dir, "shot.png")
	run("--screenshot="+file, "--window-size="+itoa(width)+","+itoa(height), "--hide-scrollbars")
	f, err := os.Open(file)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	shot, err = png.Decode(f)
	if err != nil {
		tb.Fatal(err)
	}
	if keep := os.Getenv("KEDASTRAL_KEEP_SCREENSHOT"); keep != "" {
		_ = os.WriteFile(keep, mustRead(file), 0o644)
	}
	return dom, shot
}

// CountColor counts the pixels of img within 24 of the color #rrggbb in
// each channel.
func CountColor(img image.Image, rgb uint32) int {
	near := func(a, b uint32) bool { return a+24 >= b && a <= b+24 }
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if near(r>>8, rgb>>16&0xff) && near(g>>8, rgb>>8&0xff) && near(bl>>8, rgb&0xff) {
				n++
			}
		}
	}
	return n
}

func itoa(n int) string { return strconv.Itoa(n) }

func mustRead(p string) []byte {
	b, _ := os.ReadFile(p)
	return b
}
