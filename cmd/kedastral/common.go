package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/config"
)

// newRegistry returns the registry a component serves on /metrics, with
// kedastral_build_info and the Go and process collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		versioncollector.NewCollector("kedastral"),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// addWebServer serves mux on lis as an actor of g, shut down gracefully
// when the group stops.
func addWebServer(g *run.Group, logger log.Logger, lis net.Listener, mux http.Handler) {
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	g.Add(func() error {
		level.Info(logger).Log("msg", "listening", "address", lis.Addr())
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("web server: %w", err)
		}
		return nil
	}, func(error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
}

// loadHTTPConfig reads Prometheus' HTTP client configuration (authorization,
// basic_auth, tls_config, proxy, http_headers) from a file, as Prometheus
// does for its own clients; an empty path gives the defaults.
func loadHTTPConfig(flag, path string) (config.HTTPClientConfig, error) {
	if path == "" {
		return config.DefaultHTTPClientConfig, nil
	}
	cfg, _, err := config.LoadHTTPConfigFile(path)
	if err != nil {
		return config.HTTPClientConfig{}, fmt.Errorf("%s: %w", flag, err)
	}
	return *cfg, nil
}
