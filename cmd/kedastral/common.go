package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/go-kit/log"
	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/config"
	"github.com/prometheus/exporter-toolkit/web"
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
// when the group stops. A web configuration file (--web.config.file, the
// format of Prometheus and its exporters: tls_server_config, basic_auth_users,
// http_server_config) adds TLS and basic auth, through exporter-toolkit.
func addWebServer(g *run.Group, logger log.Logger, lis net.Listener, mux http.Handler, webConfig string) {
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	flags := &web.FlagConfig{WebListenAddresses: &[]string{lis.Addr().String()}, WebSystemdSocket: new(bool), WebConfigFile: &webConfig}
	g.Add(func() error {
		if err := web.Serve(lis, srv, flags, newSlog(log.With(logger, "component", "web"))); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("web server: %w", err)
		}
		return nil
	}, func(error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
}

// checkWebConfig reads a web configuration file, so that a bad one stops the
// component at start with the flag named.
func checkWebConfig(path string) error {
	if err := web.Validate(path); err != nil {
		return fmt.Errorf("--web.config.file: %w", err)
	}
	return nil
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
