package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/version"

	"github.com/kedastral/kedastral/engine/policy"
	"github.com/kedastral/kedastral/engine/scaler"
	"github.com/kedastral/kedastral/promapi"
)

// ScalerPrometheusFlags are the scaler's --prometheus.* flags: where the
// kedastral_* series are read.
type ScalerPrometheusFlags struct {
	URL            string        `name:"url" default:"http://localhost:9090" help:"Base URL of the Prometheus-compatible query API holding the forecaster's kedastral_* series."`
	HTTPConfigFile string        `name:"http-config-file" type:"existingfile" help:"File with Prometheus' HTTP client configuration (authorization, basic_auth, tls_config, proxy) for the query API."`
	Timeout        time.Duration `name:"timeout" default:"10s" help:"Timeout of one query request."`
}

// GRPCFlags are the --grpc.* flags: the External Scaler endpoint KEDA calls.
type GRPCFlags struct {
	ListenAddress   string        `name:"listen-address" default:":50051" help:"Address of the gRPC External Scaler (set the trigger's scalerAddress to it)."`
	TLSCertFile     string        `name:"tls.cert-file" type:"existingfile" help:"PEM certificate to serve gRPC over TLS (with --grpc.tls.key-file). The TLS files are re-read when they change."`
	TLSKeyFile      string        `name:"tls.key-file" type:"existingfile" help:"PEM private key of --grpc.tls.cert-file."`
	TLSClientCAFile string        `name:"tls.client-ca-file" type:"existingfile" help:"PEM CA bundle; when set, clients must present a certificate it signed (mTLS: the trigger's tlsClientCert/tlsClientKey)."`
	GracePeriod     time.Duration `name:"grace-period" default:"10s" help:"How long a shutdown waits for running requests."`
}

// ScalerWebFlags are the scaler's --web.* flags.
type ScalerWebFlags struct {
	ListenAddress string `name:"listen-address" default:":8081" help:"Address to serve /metrics, /-/healthy and /-/ready on."`
	ConfigFile    string `name:"config.file" type:"existingfile" help:"Web configuration file of Prometheus and its exporters (tls_server_config, basic_auth_users, http_server_config): TLS and basic auth for everything served on --web.listen-address."`
}

// ScalerCmd is `kedastral scaler`.
type ScalerCmd struct {
	Prometheus           ScalerPrometheusFlags `embed:"" prefix:"prometheus."`
	GRPC                 GRPCFlags             `embed:"" prefix:"grpc."`
	Web                  ScalerWebFlags        `embed:"" prefix:"web."`
	CacheTTL             time.Duration         `name:"cache.ttl" default:"1s" help:"How long a query result is reused across ScaledObjects; concurrent reads of one policy are coalesced into one query. 0 turns reuse off."`
	StreamCheckInterval  time.Duration         `name:"stream.check-interval" default:"1s" help:"How often StreamIsActive (external-push triggers) re-evaluates activity."`
	StreamResendInterval time.Duration         `name:"stream.resend-interval" default:"30s" help:"Longest time StreamIsActive stays silent when activity does not change."`
}

// Validate checks the flags before anything starts.
func (c *ScalerCmd) Validate() error {
	if err := policy.ValidateURL(c.Prometheus.URL); err != nil {
		return fmt.Errorf("--prometheus.url: %w", err)
	}
	if c.Prometheus.Timeout <= 0 {
		return errors.New("--prometheus.timeout must be positive")
	}
	if (c.GRPC.TLSCertFile == "") != (c.GRPC.TLSKeyFile == "") {
		return errors.New("--grpc.tls.cert-file and --grpc.tls.key-file go together")
	}
	if c.GRPC.TLSClientCAFile != "" && c.GRPC.TLSCertFile == "" {
		return errors.New("--grpc.tls.client-ca-file needs --grpc.tls.cert-file and --grpc.tls.key-file")
	}
	if c.CacheTTL < 0 {
		return errors.New("--cache.ttl must not be negative")
	}
	if c.StreamCheckInterval <= 0 || c.StreamResendInterval <= 0 {
		return errors.New("--stream.check-interval and --stream.resend-interval must be positive")
	}
	return nil
}

// Run runs the scaler until SIGINT or SIGTERM.
func (c *ScalerCmd) Run(logger log.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return c.run(ctx, logger, nil)
}

// run runs the scaler until ctx ends. ready, when not nil, receives the gRPC
// and web addresses once both listen.
func (c *ScalerCmd) run(ctx context.Context, logger log.Logger, ready func(grpcAddr, webAddr net.Addr)) error {
	reg := newRegistry()
	level.Info(logger).Log("msg", "starting kedastral scaler", "version", version.Info(), "build_context", version.BuildContext())

	httpCfg, err := loadHTTPConfig("--prometheus.http-config-file", c.Prometheus.HTTPConfigFile)
	if err != nil {
		return err
	}
	client, err := promapi.NewClient(promapi.ClientConfig{
		URL:              c.Prometheus.URL,
		HTTPClientConfig: httpCfg,
		Timeout:          c.Prometheus.Timeout,
		Logger:           log.With(logger, "component", "query"),
	})
	if err != nil {
		return fmt.Errorf("--prometheus.url: %w", err)
	}
	defer client.Close()
	promURL := policy.RedactURL(c.Prometheus.URL)
	level.Info(logger).Log("msg", "reading forecasts from Prometheus", "url", promURL)
	go probePrometheus(ctx, logger, client, promURL, c.Prometheus.Timeout)

	opts := scaler.Options{
		Querier:              client,
		ListenAddress:        c.GRPC.ListenAddress,
		Logger:               log.With(logger, "component", "scaler"),
		Registerer:           reg,
		CacheTTL:             c.CacheTTL,
		QueryTimeout:         c.Prometheus.Timeout,
		StreamCheckInterval:  c.StreamCheckInterval,
		StreamResendInterval: c.StreamResendInterval,
		ShutdownTimeout:      c.GRPC.GracePeriod,
	}
	if c.CacheTTL == 0 {
		opts.CacheTTL = -1 // off
	}
	if c.GRPC.TLSCertFile != "" {
		if opts.TLSConfig, err = scaler.TLSConfig(c.GRPC.TLSCertFile, c.GRPC.TLSKeyFile, c.GRPC.TLSClientCAFile); err != nil {
			return fmt.Errorf("--grpc.tls.*: %w", err)
		}
	}
	srv, err := scaler.NewServer(opts)
	if err != nil {
		return err
	}
	defer srv.Stop()

	if err := checkWebConfig(c.Web.ConfigFile); err != nil {
		return err
	}
	webLis, err := net.Listen("tcp", c.Web.ListenAddress)
	if err != nil {
		return fmt.Errorf("--web.listen-address: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.Handle("/", srv.StatusHandler(versionLine(), promURL))
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "Kedastral scaler is Healthy.")
	})
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "Kedastral scaler is Ready.")
	})

	var g run.Group
	g.Add(func() error { return srv.Run(context.Background()) }, func(error) { srv.Stop() })
	addWebServer(&g, logger, webLis, mux, c.Web.ConfigFile)
	{
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error {
			if ready != nil {
				ready(srv.Addr(), webLis.Addr())
			}
			<-ctx.Done()
			level.Info(logger).Log("msg", "shutting down")
			return nil
		}, func(error) { cancel() })
	}
	return g.Run()
}

// probePrometheus makes the scaler's first query at start, so that a wrong
// --prometheus.url (its default is localhost:9090) shows in the log at once
// rather than at KEDA's first call; it also says when Prometheus holds no
// forecast yet.
func probePrometheus(ctx context.Context, logger log.Logger, client *promapi.Client, url string, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	q := "count(" + scaler.DesiredReplicasMetric + ")"
	res, err := client.Query(ctx, q, time.Now())
	switch {
	case errors.Is(err, context.Canceled):
	case err != nil:
		level.Warn(logger).Log("msg", "the first query to Prometheus failed: is --prometheus.url right?", "url", url, "query", q, "err", err)
	case len(res) == 0:
		level.Warn(logger).Log("msg", "Prometheus holds no forecast yet: is the forecaster running and writing to it?", "url", url, "query", q)
	default:
		level.Info(logger).Log("msg", "Prometheus answered", "url", url, "forecast_series", res[0].V)
	}
}
