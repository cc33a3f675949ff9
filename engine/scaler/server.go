package scaler

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/kedastral/kedastral/promapi"
	pb "github.com/kedastral/kedastral/proto"
)

// Defaults of Options.
const (
	DefaultListenAddress        = ":50051"
	DefaultCacheTTL             = time.Second
	DefaultQueryTimeout         = 10 * time.Second
	DefaultStreamCheckInterval  = time.Second
	DefaultStreamResendInterval = 30 * time.Second
	DefaultShutdownTimeout      = 10 * time.Second
)

// Options configure a Server. Querier is required.
type Options struct {
	// Querier reads Prometheus.
	Querier Querier
	// ListenAddress is the gRPC address. Default DefaultListenAddress.
	ListenAddress string
	// TLSConfig, when not nil, serves gRPC over TLS (see TLSConfig()).
	TLSConfig *tls.Config
	// Logger. Default: none.
	Logger log.Logger
	// Registerer for the metrics (nil: not registered).
	Registerer prometheus.Registerer
	// CacheTTL is how long a query result is reused. Default
	// DefaultCacheTTL; a negative value turns caching off (concurrent
	// reads are still coalesced).
	CacheTTL time.Duration
	// QueryTimeout bounds one Prometheus query. Default DefaultQueryTimeout.
	QueryTimeout time.Duration
	// StreamCheckInterval is how often StreamIsActive re-evaluates.
	// Default DefaultStreamCheckInterval.
	StreamCheckInterval time.Duration
	// StreamResendInterval is the longest StreamIsActive stays silent.
	// Default DefaultStreamResendInterval.
	StreamResendInterval time.Duration
	// ShutdownTimeout bounds the graceful stop. Default DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Server is the gRPC External Scaler with the gRPC health service.
type Server struct {
	opts    Options
	logger  log.Logger
	metrics *Metrics
	// forecasts caches the parsed forecast query per policy, reactive the
	// reactive queries' results per query.
	forecasts *cache[*forecastSet]
	reactive  *cache[[]promapi.Sample]
	triggers  *triggerCache
	answers   *answerLog
	cancel    context.CancelFunc
	lis       net.Listener
	grpc      *grpc.Server
	health    *health.Server

	quit     chan struct{} // closed by Stop: streams end
	stopOnce sync.Once
	stopped  chan struct{} // closed when Stop has finished
}

// NewServer fills in defaults and listens on opts.ListenAddress, so that
// Addr is known (and a busy port reported) before Run.
func NewServer(opts Options) (*Server, error) {
	if opts.Querier == nil {
		return nil, errors.New("scaler: a Querier is required")
	}
	if opts.ListenAddress == "" {
		opts.ListenAddress = DefaultListenAddress
	}
	if opts.Logger == nil {
		opts.Logger = log.NewNopLogger()
	}
	switch {
	case opts.CacheTTL == 0:
		opts.CacheTTL = DefaultCacheTTL
	case opts.CacheTTL < 0:
		opts.CacheTTL = 0
	}
	if opts.QueryTimeout <= 0 {
		opts.QueryTimeout = DefaultQueryTimeout
	}
	if opts.StreamCheckInterval <= 0 {
		opts.StreamCheckInterval = DefaultStreamCheckInterval
	}
	if opts.StreamResendInterval <= 0 {
		opts.StreamResendInterval = DefaultStreamResendInterval
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = DefaultShutdownTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	lis, err := net.Listen("tcp", opts.ListenAddress)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", opts.ListenAddress, err)
	}
	base, cancel := context.WithCancel(context.Background())
	s := &Server{
		opts:      opts,
		logger:    opts.Logger,
		metrics:   NewMetrics(opts.Registerer),
		forecasts: newCache[*forecastSet](base, opts.CacheTTL, opts.Now),
		triggers:  newTriggerCache(),
		answers:   newAnswerLog(),
		reactive:  newCache[[]promapi.Sample](base, opts.CacheTTL, opts.Now),
		cancel:    cancel,
		lis:       lis,
		health:    health.NewServer(),
		quit:      make(chan struct{}),
		stopped:   make(chan struct{}),
	}
	sopts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(s.unaryMetrics),
		grpc.ChainStreamInterceptor(s.streamMetrics),
		// Requests run on a pool of goroutines with grown stacks instead of
		// a new goroutine each (a stream that outlasts them, such as
		// StreamIsActive, still gets its own): less CPU per GetMetrics.
		grpc.NumStreamWorkers(uint32(4 * runtime.GOMAXPROCS(0))),
	}
	if opts.TLSConfig != nil {
		sopts = append(sopts, grpc.Creds(credentials.NewTLS(opts.TLSConfig)))
	}
	s.grpc = grpc.NewServer(sopts...)
	pb.RegisterExternalScalerServer(s.grpc, &service{s: s})
	healthpb.RegisterHealthServer(s.grpc, s.health)
	s.health.SetServingStatus(pb.ExternalScaler_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.lis.Addr() }

// Run serves until ctx ends or Stop is called, then stops gracefully.
func (s *Server) Run(ctx context.Context) error {
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			s.Stop()
		case <-done:
		}
	}()
	level.Info(s.logger).Log("msg", "serving gRPC", "address", s.lis.Addr(), "tls", s.opts.TLSConfig != nil)
	if err := s.grpc.Serve(s.lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		s.Stop()
		return fmt.Errorf("grpc server: %w", err)
	}
	<-s.stopped // Serve returns as soon as Stop begins; wait for it to finish
	return nil
}

// Stop ends the streams, stops the server gracefully (bounded by
// ShutdownTimeout) and waits for running queries. It is idempotent.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		s.health.Shutdown()
		close(s.quit)
		graceful := make(chan struct{})
		go func() { s.grpc.GracefulStop(); close(graceful) }()
		t := time.NewTimer(s.opts.ShutdownTimeout)
		select {
		case <-graceful:
			t.Stop()
		case <-t.C:
			level.Warn(s.logger).Log("msg", "graceful stop timed out, closing connections")
			s.grpc.Stop()
			<-graceful
		}
		s.cancel()
		s.forecasts.wait()
		s.reactive.wait()
		close(s.stopped)
	})
	<-s.stopped
}

func (s *Server) unaryMetrics(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	begin := time.Now()
	resp, err := handler(ctx, req)
	method := shortMethod(info.FullMethod)
	s.metrics.latency.WithLabelValues(method).Observe(time.Since(begin).Seconds())
	s.metrics.requests.WithLabelValues(method, status.Code(err).String()).Inc()
	return resp, err
}

func (s *Server) streamMetrics(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	err := handler(srv, ss)
	s.metrics.requests.WithLabelValues(shortMethod(info.FullMethod), status.Code(err).String()).Inc()
	return err
}

func shortMethod(full string) string {
	for i := len(full) - 1; i >= 0; i-- {
		if full[i] == '/' {
			return full[i+1:]
		}
	}
	return full
}

// TLSConfig builds the server's TLS configuration from PEM files: the
// certificate and key, and, when clientCAFile is not empty, the CA bundle
// client certificates must be signed by (mTLS: tls.RequireAndVerifyClientCert).
// The files are read now, and again on a new connection after any of them
// changed (modification time or size), so a rotated certificate is served
// without a restart; a rotation that fails to load keeps the previous files'
// configuration.
func TLSConfig(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("TLS needs both a certificate and a key file")
	}
	f := &tlsFiles{cert: certFile, key: keyFile, ca: clientCAFile}
	cfg, err := f.get()
	if err != nil {
		return nil, err
	}
	out := cfg.Clone()
	out.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return f.get() }
	return out, nil
}

// tlsFiles loads a TLS configuration from files and reloads it when they change.
type tlsFiles struct {
	cert, key, ca string

	mu    sync.Mutex
	stamp string
	cfg   *tls.Config
}

func (f *tlsFiles) get() (*tls.Config, error) {
	var stamp strings.Builder
	for _, p := range []string{f.cert, f.key, f.ca} {
		if p == "" {
			continue
		}
		if fi, err := os.Stat(p); err == nil {
			fmt.Fprintf(&stamp, "%d/%d;", fi.ModTime().UnixNano(), fi.Size())
		} else {
			stamp.WriteString("missing;")
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cfg != nil && stamp.String() == f.stamp {
		return f.cfg, nil
	}
	cfg, err := f.load()
	if err != nil {
		if f.cfg != nil {
			return f.cfg, nil // keep serving the previous certificate
		}
		return nil, err
	}
	f.stamp, f.cfg = stamp.String(), cfg
	return cfg, nil
}

func (f *tlsFiles) load() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(f.cert, f.key)
	if err != nil {
		return nil, fmt.Errorf("load TLS key pair %s, %s: %w", f.cert, f.key, err)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2"}, // gRPC needs ALPN h2; a config from GetConfigForClient must say so itself
	}
	if f.ca != "" {
		pem, err := os.ReadFile(f.ca)
		if err != nil {
			return nil, fmt.Errorf("read client CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client CA file %s: no PEM certificate found", f.ca)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}
