// Package promtest runs a real Prometheus server (the prometheus binary on
// PATH, e.g. Debian's package, or the one in $KEDASTRAL_PROMETHEUS_BIN, e.g.
// Prometheus 3 from test/bins/build.sh) on a free loopback port, for integration tests
// and for the demo: remote-write receiver and lifecycle API enabled, optional
// out-of-order window, history loaded beforehand with CreateBlocks.
package promtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kedastral/kedastral/test/prereq"
)

const (
	// StartTimeout bounds how long Start waits for /-/ready.
	StartTimeout = 30 * time.Second
	// StopTimeout bounds how long Stop waits after SIGTERM before killing.
	StopTimeout = 10 * time.Second

	portAttempts = 5
	configFile   = "prometheus.yml"
	webFile      = "web.yml"
	logFile      = "prometheus.log"
)

// Options configures the server.
type Options struct {
	// OutOfOrderWindow, when positive, sets storage.tsdb.out_of_order_time_window
	// so that samples older than the head (e.g. remote-written after
	// CreateBlocks loaded newer history) are accepted.
	OutOfOrderWindow time.Duration
	// ScrapeConfigs is YAML placed under scrape_configs: (a list, e.g.
	// "- job_name: x\n  static_configs: ..."). Default: no scraping.
	// Prometheus hands discovered targets to the scraper every 5s, so the
	// first scrape happens about 5s after the start.
	ScrapeConfigs string
	// RuleFiles are listed under rule_files:.
	RuleFiles []string
	// EvaluationInterval is the global rule evaluation (and scrape) interval.
	// Default 15s.
	EvaluationInterval time.Duration
	// ExtraArgs are appended to the command line. A --storage.tsdb.retention.time
	// here replaces the default of 30d.
	ExtraArgs []string
	// ExternalLabels are the global external_labels, e.g. for a Thanos
	// sidecar, which refuses a Prometheus without any.
	ExternalLabels map[string]string
	// BinDir, when set, is the directory of the prometheus binary to run,
	// e.g. Prometheus3Dir for a test of what only Prometheus 3 does. Default:
	// $KEDASTRAL_PROMETHEUS_BIN, else PATH (see Binary).
	BinDir string
	// WebConfig, when set, is the YAML of Prometheus' --web.config.file
	// (tls_server_config, basic_auth_users with bcrypt hashes). With
	// tls_server_config, URL is https; the readiness check then trusts any
	// certificate and counts a 401 as answering.
	WebConfig string
	// NoRemoteWriteReceiver starts the server without
	// --web.enable-remote-write-receiver, as Prometheus runs by default.
	NoRemoteWriteReceiver bool
}

// Server is a running (or stopped) Prometheus process.
type Server struct {
	dataDir string
	port    int
	opts    Options
	bin     string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// Start writes a configuration into dataDir, starts prometheus with its TSDB
// in dataDir on a free loopback port and waits until it is ready (bounded by
// ctx and StartTimeout). The server runs until Stop or Kill, regardless of
// ctx. Its log goes to prometheus.log in dataDir; a failed start returns an
// error that ends with the log's tail.
func Start(ctx context.Context, dataDir string, opts Options) (*Server, error) {
	bin, err := Binary(opts.BinDir, "prometheus")
	if err != nil {
		return nil, fmt.Errorf("start prometheus: %w", err)
	}
	dataDir, err = filepath.Abs(dataDir)
	if err != nil {
		return nil, fmt.Errorf("start prometheus: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("start prometheus: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, configFile), []byte(configYAML(opts)), 0o644); err != nil {
		return nil, fmt.Errorf("start prometheus: %w", err)
	}
	if opts.WebConfig != "" {
		if err := os.WriteFile(filepath.Join(dataDir, webFile), []byte(opts.WebConfig), 0o600); err != nil {
			return nil, fmt.Errorf("start prometheus: %w", err)
		}
	}
	s := &Server{dataDir: dataDir, opts: opts, bin: bin}
	for range portAttempts {
		if s.port, err = freePort(); err != nil {
			return nil, fmt.Errorf("start prometheus: %w", err)
		}
		err = s.start(ctx)
		if err == nil || !errors.Is(err, errAddrInUse) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// StartT starts a server in a temporary directory for the test and stops it
// when the test ends. Without a prometheus binary on PATH it fails the test,
// naming the program and how to get it.
func StartT(t testing.TB, opts Options) *Server {
	t.Helper()
	return StartInT(t, t.TempDir(), opts)
}

// StartInT is StartT with a given data directory, e.g. one that CreateBlocks
// filled.
func StartInT(t testing.TB, dataDir string, opts Options) *Server {
	t.Helper()
	if opts.BinDir == "" {
		RequireBinaries(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	s, err := Start(ctx, dataDir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stop prometheus: %v", err)
		}
		if t.Failed() {
			t.Logf("prometheus log tail:\n%s", s.LogTail(30))
		}
	})
	return s
}

// RequireBinaries fails the test, naming the program and how to get it, when
// prometheus or promtool is not found (see Binary).
func RequireBinaries(t testing.TB) {
	t.Helper()
	for _, bin := range []string{"prometheus", "promtool"} {
		if _, err := Binary("", bin); err != nil {
			t.Fatalf("missing prerequisite: %v: %s", err, prereq.Hint(bin))
		}
	}
}

// URL is the server's base URL, http://127.0.0.1:PORT (https with a
// tls_server_config in Options.WebConfig).
func (s *Server) URL() string {
	if s.tls() {
		return "https://" + s.addr()
	}
	return "http://" + s.addr()
}

func (s *Server) tls() bool { return strings.Contains(s.opts.WebConfig, "tls_server_config") }

// RemoteWriteURL is the URL of the remote-write receiver.
func (s *Server) RemoteWriteURL() string { return s.URL() + "/api/v1/write" }

// DataDir is the TSDB directory, which also holds the configuration and the log.
func (s *Server) DataDir() string { return s.dataDir }

// LogFile is the path of the server's log (stdout and stderr, all runs).
func (s *Server) LogFile() string { return filepath.Join(s.dataDir, logFile) }

// LogTail returns the last n lines of the server's log.
func (s *Server) LogTail(n int) string { return tail(s.LogFile(), n) }

func (s *Server) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Stop sends SIGTERM, waits up to StopTimeout for a clean shutdown and kills
// the process after that. It is idempotent.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked(StopTimeout)
}

// Kill kills the process without a clean shutdown (SIGKILL) and waits for it.
// It is idempotent.
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked(0)
}

// Restart stops the server if it is running and starts it again on the same
// port with the same data directory, e.g. after Kill to end a simulated
// outage. It retries a few times if the port is still taken.
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.stopLocked(StopTimeout); err != nil {
		return err
	}
	var err error
	for range portAttempts {
		if err = s.startLocked(ctx); err == nil || !errors.Is(err, errAddrInUse) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
	return err
}

func (s *Server) stopLocked(grace time.Duration) error {
	if s.cmd == nil {
		return nil
	}
	defer func() { s.cmd = nil }()
	select {
	case <-s.done:
		return nil // already exited
	default:
	}
	if grace > 0 {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
			return nil
		case <-time.After(grace):
		}
	}
	_ = s.cmd.Process.Kill()
	select {
	case <-s.done:
	case <-time.After(StopTimeout):
		return fmt.Errorf("prometheus (pid %d) did not exit after SIGKILL", s.cmd.Process.Pid)
	}
	if grace > 0 {
		return fmt.Errorf("prometheus (pid %d) did not stop within %s of SIGTERM; killed", s.cmd.Process.Pid, grace)
	}
	return nil
}

func (s *Server) start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.startLocked(ctx)
}

var errAddrInUse = errors.New("address already in use")

func (s *Server) startLocked(ctx context.Context) error {
	logPath := s.LogFile()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start prometheus: %w", err)
	}
	defer logf.Close() // the child has its own descriptor
	logStart, _ := logf.Seek(0, 2)

	args := []string{
		"--config.file=" + filepath.Join(s.dataDir, configFile),
		"--storage.tsdb.path=" + s.dataDir,
		"--web.listen-address=" + s.addr(),
		"--web.enable-lifecycle",
	}
	if !s.opts.NoRemoteWriteReceiver {
		args = append(args, "--web.enable-remote-write-receiver")
	}
	if s.opts.WebConfig != "" {
		args = append(args, "--web.config.file="+filepath.Join(s.dataDir, webFile))
	}
	if !slices.ContainsFunc(s.opts.ExtraArgs, func(a string) bool {
		return strings.HasPrefix(a, "--storage.tsdb.retention.time")
	}) {
		args = append(args, "--storage.tsdb.retention.time=30d")
	}
	args = append(args, s.opts.ExtraArgs...)
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dataDir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start prometheus: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.cmd, s.done = cmd, done

	if err := s.waitReady(ctx, logPath, logStart); err != nil {
		_ = s.stopLocked(0)
		logTail := tailFrom(logPath, logStart, 30)
		if strings.Contains(logTail, "address already in use") {
			err = fmt.Errorf("%w: %w", errAddrInUse, err)
		}
		return fmt.Errorf("start prometheus on %s: %w\nlog tail (%s):\n%s", s.addr(), err, logPath, logTail)
	}
	return nil
}

// waitReady polls /-/ready. Since another process may have taken the port
// between freePort and the start, a 200 counts only once this process has
// logged that it is ready (Prometheus logs it right after it starts to answer
// 200).
func (s *Server) waitReady(ctx context.Context, logPath string, logStart int64) error {
	ctx, cancel := context.WithTimeout(ctx, StartTimeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	if s.tls() {
		// Only to poll readiness; the log line below is the real signal.
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec
	}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := client.Get(s.URL() + "/-/ready")
		if err == nil {
			resp.Body.Close()
			answering := resp.StatusCode == http.StatusOK || (s.opts.WebConfig != "" && resp.StatusCode == http.StatusUnauthorized)
			if answering && logContains(logPath, logStart, readyMessage) {
				return nil
			}
		}
		select {
		case <-s.done:
			return fmt.Errorf("exited before it was ready (%s)", s.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

const readyMessage = "Server is ready to receive web requests."

func logContains(path string, off int64, text string) bool {
	b, err := os.ReadFile(path)
	if err != nil || off > int64(len(b)) {
		return false
	}
	return bytes.Contains(b[off:], []byte(text))
}

func configYAML(opts Options) string {
	interval := opts.EvaluationInterval
	if interval <= 0 {
		interval = 15 * time.Second
	}
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  evaluation_interval: %s\n", promDuration(interval), promDuration(interval))
	if len(opts.ExternalLabels) > 0 {
		b.WriteString("  external_labels:\n")
		for _, k := range slices.Sorted(maps.Keys(opts.ExternalLabels)) {
			fmt.Fprintf(&b, "    %s: %s\n", strconv.Quote(k), strconv.Quote(opts.ExternalLabels[k]))
		}
	}
	if opts.OutOfOrderWindow > 0 {
		fmt.Fprintf(&b, "storage:\n  tsdb:\n    out_of_order_time_window: %s\n", promDuration(opts.OutOfOrderWindow))
	}
	if len(opts.RuleFiles) > 0 {
		b.WriteString("rule_files:\n")
		for _, f := range opts.RuleFiles {
			fmt.Fprintf(&b, "  - %s\n", strconv.Quote(f))
		}
	}
	if opts.ScrapeConfigs != "" {
		b.WriteString("scrape_configs:\n")
		b.WriteString(opts.ScrapeConfigs)
		b.WriteString("\n")
	}
	return b.String()
}

// promDuration formats d in Prometheus' duration syntax (whole milliseconds).
func promDuration(d time.Duration) string {
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

func freePort() (int, error) { return FreePort() }

func tail(path string, n int) string { return tailFrom(path, 0, n) }

// tailFrom returns the last n lines of path from byte offset off on.
func tailFrom(path string, off int64, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	if off > 0 && off <= int64(len(b)) {
		b = b[off:]
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
