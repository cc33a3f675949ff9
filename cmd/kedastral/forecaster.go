package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/version"

	"github.com/kedastral/kedastral/engine/forecast"
	"github.com/kedastral/kedastral/engine/kube"
	"github.com/kedastral/kedastral/engine/policy"
	"github.com/kedastral/kedastral/promapi"
)

// PrometheusFlags are the --prometheus.* flags: the default store to read.
type PrometheusFlags struct {
	URL            string        `name:"url" default:"http://localhost:9090" help:"Base URL of the Prometheus-compatible query API used by policies without a dataSourceRef."`
	Timeout        time.Duration `name:"timeout" default:"1m" help:"Timeout of one query request."`
	HTTPConfigFile string        `name:"http-config-file" type:"existingfile" help:"File with Prometheus' HTTP client configuration (authorization, basic_auth, tls_config, proxy, http_headers) for --prometheus.url; also used for remote write when --remote-write.url is not set."`
}

// RemoteWriteFlags are the --remote-write.* flags.
type RemoteWriteFlags struct {
	URL            string `name:"url" help:"Remote-write endpoint for kedastral_* series (default: the Prometheus URL + /api/v1/write)."`
	HTTPConfigFile string `name:"http-config-file" type:"existingfile" help:"File with Prometheus' HTTP client configuration for --remote-write.url, e.g. http_headers with X-Scope-OrgID for Mimir (default: --prometheus.http-config-file when --remote-write.url is not set)."`
	Protocol       string `name:"protocol" default:"1.0" enum:"1.0,2.0" help:"Remote-write protocol version (${enum}); 2.0 needs Prometheus 2.54 or later."`
	// NameValidation: the output series keep the labels of the policy's
	// query, so on Prometheus 3 they may be UTF-8 ("my.label").
	NameValidation string        `name:"name-validation" default:"utf8" enum:"utf8,legacy" help:"Metric and label names accepted before sending (${enum}): utf8 (Prometheus 3) lets the labels of a policy's query through whatever the store returned; legacy refuses names outside [a-zA-Z_][a-zA-Z0-9_]*, what Prometheus 2 and older receivers store."`
	Timeout        time.Duration `name:"timeout" default:"30s" help:"Upper bound of one remote-write attempt, the client's quick retries included; a cycle waits for its write at most one interval, and the retry buffer tries again later."`
	// MaxSeriesPerRequest and Shards split a large cycle (promapi.Writer).
	MaxSeriesPerRequest int `name:"max-series-per-request" default:"2000" help:"Series per remote-write request; a cycle with more is split into several requests, each series in one of them. 0 sends every cycle in one request."`
	Shards              int `name:"shards" default:"4" help:"Requests of a split cycle in flight at once; each series always goes to the same shard (hash of its labels), which sends its requests in order."`
	// QueueMaxSamples bounds the retry buffer (promapi.Queue).
	QueueMaxSamples int `name:"queue.max-samples" default:"100000" help:"Samples kept for retry while remote write fails (5xx, 429, timeouts); beyond it the oldest cycles are dropped and counted."`
}

// WebFlags are the --web.* flags.
type WebFlags struct {
	ListenAddress string `name:"listen-address" default:":8080" help:"Address to serve /metrics, the status page, /-/healthy, /-/ready and /-/reload on."`
	DisableReload bool   `name:"disable-reload" help:"Refuse POST /-/reload (SIGHUP still reloads)."`
	ConfigFile    string `name:"config.file" type:"existingfile" help:"Web configuration file of Prometheus and its exporters (tls_server_config, basic_auth_users, http_server_config): TLS and basic auth for everything served on --web.listen-address."`
}

// ForecasterCmd is `kedastral forecaster`.
type ForecasterCmd struct {
	ConfigFile     string              `name:"config.file" type:"path" help:"Policy file: a YAML stream of ForecastPolicy and DataSource objects (required with --policies.source=file)."`
	Policies       PoliciesFlags       `embed:"" prefix:"policies."`
	Kubeconfig     string              `name:"kubeconfig" type:"existingfile" help:"Kubeconfig file for --policies.source=kubernetes and leader election (default: the pod's service account)."`
	Kubernetes     KubernetesFlags     `embed:"" prefix:"kubernetes."`
	LeaderElection LeaderElectionFlags `embed:"" prefix:"leader-election."`
	Prometheus     PrometheusFlags     `embed:"" prefix:"prometheus."`
	RemoteWrite    RemoteWriteFlags    `embed:"" prefix:"remote-write."`
	Web            WebFlags            `embed:"" prefix:"web."`
	Shard          ShardFlags          `embed:"" prefix:"shard."`
	History        HistoryFlags        `embed:"" prefix:"history."`
	Query          QueryFlags          `embed:"" prefix:"query."`
}

// PoliciesFlags choose where policies come from.
type PoliciesFlags struct {
	Source string `name:"source" default:"file" enum:"file,kubernetes" help:"Where policies come from (${enum}): --config.file, or ForecastPolicy and DataSource objects in the Kubernetes API, watched, with their status written back."`
}

// KubernetesFlags configure --policies.source=kubernetes.
type KubernetesFlags struct {
	Namespaces     []string      `name:"namespaces" help:"Namespaces to watch for ForecastPolicy and DataSource objects, comma-separated (default: all)."`
	Debounce       time.Duration `name:"debounce" default:"1s" help:"After a change, wait this long for more before applying them all at once."`
	StatusInterval time.Duration `name:"status-interval" default:"2s" help:"How often statuses are compared with the forecast loop and written where they changed."`
	StatusRefresh  time.Duration `name:"status-refresh" default:"1m" help:"A status whose only change is its lastEvaluationTime is written at most this often."`
}

// LeaderElectionFlags configure leader election among unsharded replicas.
type LeaderElectionFlags struct {
	Enabled       bool          `name:"enabled" help:"Run the policies only while holding a Lease, so that of several unsharded replicas one writes series and status (needs --policies.source=kubernetes)."`
	Namespace     string        `name:"namespace" help:"Namespace of the Lease (default: the pod's namespace)."`
	LeaseName     string        `name:"lease-name" default:"kedastral-forecaster" help:"Name of the Lease."`
	LeaseDuration time.Duration `name:"lease-duration" default:"15s" help:"How long a Lease holds without renewal; a standby takes over after it."`
	RenewDeadline time.Duration `name:"renew-deadline" default:"10s" help:"How long the leader retries renewing before it gives up and exits."`
	RetryPeriod   time.Duration `name:"retry-period" default:"2s" help:"Wait between attempts to acquire or renew the Lease."`
}

// QueryFlags bound the forecaster's load on the query API.
type QueryFlags struct {
	MaxConcurrency int `name:"max-concurrency" default:"8" help:"Most query requests in flight at once, over all policies and data sources: the first full load of many policies waits for a slot rather than sending every policy's history request at once. 0 means no bound."`
}

// HistoryFlags size the per-series history kept in memory.
type HistoryFlags struct {
	FullResolution time.Duration `name:"full-resolution" default:"192h" help:"Newest history kept at the policy's step; older history (of a lookback beyond it) is kept as 5-minute means to save memory. 0 keeps all of it at the policy's step. Below 8 days, the day-lag seasonal models lose minute detail."`
}

// ShardFlags split the series of every policy across forecaster replicas.
type ShardFlags struct {
	Count int `name:"count" default:"1" help:"Number of forecaster replicas sharing the policies; each series is forecast by exactly one of them (rendezvous hash of its policy and labels)."`
	Index int `name:"index" default:"0" help:"This replica's index in [0, --shard.count); in a StatefulSet, the pod ordinal (the apps.kubernetes.io/pod-index label)."`
	// IndexFromHostname serves StatefulSets: a pod's hostname is its name,
	// <statefulset>-<ordinal>, on every Kubernetes version.
	IndexFromHostname bool `name:"index-from-hostname" help:"Take --shard.index from the number after the last '-' of the hostname, the pod ordinal in a StatefulSet (pod <name>-<ordinal>)."`
}

// shardIndexFromHostname returns the ordinal that ends a StatefulSet pod's
// hostname.
func shardIndexFromHostname(host string) (int, error) {
	i := strings.LastIndexByte(host, '-')
	n, err := strconv.Atoi(host[i+1:])
	if i < 0 || err != nil || n < 0 || host[i+1:] != strconv.Itoa(n) {
		return 0, fmt.Errorf("--shard.index-from-hostname: hostname %q does not end in -<ordinal> as a StatefulSet pod's does", host)
	}
	return n, nil
}

// Validate checks the flags before anything starts.
func (c *ForecasterCmd) Validate() error {
	if c.Shard.IndexFromHostname {
		host, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("--shard.index-from-hostname: %w", err)
		}
		if c.Shard.Index, err = shardIndexFromHostname(host); err != nil {
			return err
		}
	}
	switch c.Policies.Source {
	case "file":
		if c.ConfigFile == "" {
			return errors.New("--config.file is required with --policies.source=file")
		}
		if c.LeaderElection.Enabled {
			return errors.New("--leader-election.enabled needs --policies.source=kubernetes (with a file, run replicas sharded or let each write the same series)")
		}
	case "kubernetes":
		if c.ConfigFile != "" {
			return errors.New("--config.file and --policies.source=kubernetes exclude each other")
		}
		if c.Kubernetes.Debounce <= 0 || c.Kubernetes.StatusInterval <= 0 || c.Kubernetes.StatusRefresh <= 0 {
			return errors.New("--kubernetes.debounce, --kubernetes.status-interval and --kubernetes.status-refresh must be positive")
		}
		if le := c.LeaderElection; le.Enabled && (le.RetryPeriod <= 0 || le.RenewDeadline <= le.RetryPeriod || le.LeaseDuration <= le.RenewDeadline) {
			return fmt.Errorf("--leader-election: want lease-duration (%s) > renew-deadline (%s) > retry-period (%s) > 0", le.LeaseDuration, le.RenewDeadline, le.RetryPeriod)
		}
		if c.LeaderElection.Enabled && c.Shard.Count > 1 {
			return errors.New("--leader-election.enabled and --shard.count > 1 exclude each other: shards split the series, a leader takes all of them")
		}
	}
	if c.Shard.Count < 1 || c.Shard.Index < 0 || c.Shard.Index >= c.Shard.Count {
		return fmt.Errorf("--shard.index=%d --shard.count=%d: want a count of at least 1 and 0 <= index < count", c.Shard.Index, c.Shard.Count)
	}
	if c.Query.MaxConcurrency < 0 {
		return fmt.Errorf("--query.max-concurrency=%d: want 0 (no bound) or more", c.Query.MaxConcurrency)
	}
	if c.History.FullResolution < 0 {
		return fmt.Errorf("--history.full-resolution=%s: want 0 (all at the policy's step) or more", c.History.FullResolution)
	}
	if err := policy.ValidateURL(c.Prometheus.URL); err != nil {
		return fmt.Errorf("--prometheus.url: %w", err)
	}
	if c.RemoteWrite.URL == "" {
		c.RemoteWrite.URL = defaultRemoteWriteURL(c.Prometheus.URL)
		// Writing to the same server: the same credentials.
		if c.RemoteWrite.HTTPConfigFile == "" {
			c.RemoteWrite.HTTPConfigFile = c.Prometheus.HTTPConfigFile
		}
	}
	if err := policy.ValidateURL(c.RemoteWrite.URL); err != nil {
		return fmt.Errorf("--remote-write.url: %w", err)
	}
	if c.RemoteWrite.MaxSeriesPerRequest < 0 {
		return fmt.Errorf("--remote-write.max-series-per-request must not be negative, got %d", c.RemoteWrite.MaxSeriesPerRequest)
	}
	if c.RemoteWrite.Shards < 1 {
		return fmt.Errorf("--remote-write.shards must be positive, got %d", c.RemoteWrite.Shards)
	}
	if c.RemoteWrite.QueueMaxSamples <= 0 {
		return fmt.Errorf("--remote-write.queue.max-samples must be positive, got %d", c.RemoteWrite.QueueMaxSamples)
	}
	return nil
}

func defaultRemoteWriteURL(promURL string) string {
	u, err := url.Parse(promURL)
	if err != nil {
		return ""
	}
	u = u.JoinPath("api", "v1", "write")
	return u.String()
}

// Run runs the forecaster until SIGINT or SIGTERM.
func (c *ForecasterCmd) Run(logger log.Logger) error {
	reg := newRegistry()
	level.Info(logger).Log("msg", "starting kedastral forecaster", "version", version.Info(), "build_context", version.BuildContext())

	queryHTTP, err := loadHTTPConfig("--prometheus.http-config-file", c.Prometheus.HTTPConfigFile)
	if err != nil {
		return err
	}
	writeHTTP, err := loadHTTPConfig("--remote-write.http-config-file", c.RemoteWrite.HTTPConfigFile)
	if err != nil {
		return err
	}
	writer, err := promapi.NewWriter(promapi.WriterConfig{
		URL:              c.RemoteWrite.URL,
		HTTPClientConfig: writeHTTP,
		Protocol:         c.RemoteWrite.Protocol,
		NameValidation:   nameValidation(c.RemoteWrite.NameValidation),
		Timeout:          c.RemoteWrite.Timeout,
		Logger:           log.With(logger, "component", "remote_write"),
		// 0 on the command line means no limit, -1 in WriterConfig.
		MaxSeriesPerRequest: cmp.Or(c.RemoteWrite.MaxSeriesPerRequest, -1),
		Shards:              c.RemoteWrite.Shards,
	})
	if err != nil {
		return fmt.Errorf("remote write: %w", err)
	}
	queue, err := promapi.NewQueue(promapi.QueueConfig{
		Writer:     writer,
		MaxSamples: c.RemoteWrite.QueueMaxSamples,
		Registerer: reg,
		Logger:     log.With(logger, "component", "remote_write"),
	})
	if err != nil {
		return fmt.Errorf("remote write: %w", err)
	}
	queriers := &querierCache{defaults: promapi.ClientConfig{
		URL: c.Prometheus.URL, HTTPClientConfig: queryHTTP, Timeout: c.Prometheus.Timeout,
		Limiter: promapi.NewLimiter(c.Query.MaxConcurrency),
	}}
	kubeMode := c.Policies.Source == "kubernetes"
	mgr, err := forecast.NewManager(forecast.Options{
		PolicyNamespaces: kubeMode,
		Logger:           logger,
		Registerer:       reg,
		Writer:           queue,
		Queriers:         queriers.get,
		Shard:            forecast.Shard{Index: c.Shard.Index, Count: c.Shard.Count},
		HistoryFullResolution: func() time.Duration {
			if c.History.FullResolution <= 0 {
				return -1 // all at the policy's step
			}
			return c.History.FullResolution
		}(),
	})
	if err != nil {
		return err
	}

	reload := func() error {
		if kubeMode {
			level.Info(logger).Log("msg", "nothing to reload: policies come from the Kubernetes API, watched")
			return nil
		}
		set, errs := policy.LoadFile(c.ConfigFile)
		for _, e := range errs {
			level.Error(logger).Log("msg", "invalid configuration", "err", e)
		}
		if set == nil {
			mgr.ReloadFailed()
			return fmt.Errorf("load %s: %w", c.ConfigFile, errors.Join(errs...))
		}
		if err := mgr.Apply(set, errs); err != nil {
			level.Error(logger).Log("msg", "applying configuration", "err", err)
		}
		for _, p := range set.Policies {
			if p.Spec.ScaledObject != nil {
				level.Warn(logger).Log("msg", "spec.scaledObject is ignored: only a forecaster with --policies.source=kubernetes generates ScaledObjects; apply the ScaledObject yourself (deploy/examples/scaledobject-hybrid.yaml)", "policy", p.Metadata.Name)
			}
		}
		level.Info(logger).Log("msg", "configuration loaded", "file", c.ConfigFile, "policies", len(set.Policies), "invalid", len(errs))
		if len(set.Policies) == 0 {
			level.Warn(logger).Log("msg", "no policy to run: the configuration file holds no valid ForecastPolicy, so nothing is forecast", "file", c.ConfigFile)
		}
		if len(errs) > 0 {
			return fmt.Errorf("%d invalid object(s) in %s, see the log", len(errs), c.ConfigFile)
		}
		return nil
	}
	if err := reload(); err != nil && len(mgr.Status()) == 0 {
		return err
	}

	if err := checkWebConfig(c.Web.ConfigFile); err != nil {
		return err
	}
	webLis, err := net.Listen("tcp", c.Web.ListenAddress)
	if err != nil {
		return fmt.Errorf("--web.listen-address: %w", err)
	}

	var g run.Group
	ctx, cancel := context.WithCancel(context.Background())
	g.Add(func() error { return mgr.Run(ctx) }, func(error) { cancel() })
	if kubeMode {
		if err := c.addKubernetesSource(&g, logger, mgr); err != nil {
			return err
		}
	}
	// The queue outlives no cycle: Stop flushes what is left, bounded.
	g.Add(func() error { return queue.Run(context.Background()) }, func(error) { queue.Stop() })

	reloadReq := make(chan chan error)
	{
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		done := make(chan struct{})
		g.Add(func() error {
			for {
				select {
				case <-hup:
					level.Info(logger).Log("msg", "reloading configuration", "trigger", "SIGHUP")
					_ = reload()
				case ch := <-reloadReq:
					level.Info(logger).Log("msg", "reloading configuration", "trigger", "/-/reload")
					ch <- reload()
				case <-done:
					return nil
				}
			}
		}, func(error) { signal.Stop(hup); close(done) })
	}
	{
		term := make(chan os.Signal, 1)
		signal.Notify(term, os.Interrupt, syscall.SIGTERM)
		done := make(chan struct{})
		g.Add(func() error {
			select {
			case s := <-term:
				level.Info(logger).Log("msg", "received signal, exiting", "signal", s)
			case <-done:
			}
			return nil
		}, func(error) { signal.Stop(term); close(done) })
	}
	{
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintln(w, "Kedastral forecaster is Healthy.")
		})
		mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
			if ok, why := mgr.Ready(); !ok {
				http.Error(w, "Kedastral forecaster is not ready: "+why, http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "Kedastral forecaster is Ready.")
		})
		mux.HandleFunc("/-/reload", func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost && r.Method != http.MethodPut {
				http.Error(w, "use POST to reload", http.StatusMethodNotAllowed)
				return
			}
			if c.Web.DisableReload {
				http.Error(w, "reload over HTTP is disabled (--web.disable-reload); send SIGHUP", http.StatusForbidden)
				return
			}
			ch := make(chan error, 1)
			select {
			case reloadReq <- ch:
			case <-r.Context().Done():
				return
			}
			if err := <-ch; err != nil {
				http.Error(w, "reload: "+err.Error(), http.StatusBadRequest)
				return
			}
			fmt.Fprintln(w, "configuration reloaded")
		})
		mux.Handle("/", mgr.StatusHandler(versionLine()))
		addWebServer(&g, logger, webLis, mux, c.Web.ConfigFile)
	}
	return g.Run()
}

// addKubernetesSource adds the watch of ForecastPolicy and DataSource
// objects to g, behind leader election when it is enabled.
func (c *ForecasterCmd) addKubernetesSource(g *run.Group, logger log.Logger, mgr *forecast.Manager) error {
	kube.SetKlogLogger(log.With(logger, "component", "client-go"))
	cfg, err := kube.Config(c.Kubeconfig)
	if err != nil {
		return err
	}
	cfg.UserAgent = "kedastral-forecaster/" + version.Version
	src, err := kube.New(kube.Options{
		Config:         cfg,
		Namespaces:     c.Kubernetes.Namespaces,
		Manager:        mgr,
		Logger:         log.With(logger, "component", "kubernetes"),
		Debounce:       c.Kubernetes.Debounce,
		StatusInterval: c.Kubernetes.StatusInterval,
		StatusRefresh:  c.Kubernetes.StatusRefresh,
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	if !c.LeaderElection.Enabled {
		g.Add(func() error { return src.Run(ctx) }, func(error) { cancel() })
		return nil
	}
	le := c.LeaderElection
	lo := kube.LeaderOptions{
		Config: cfg, Namespace: cmp.Or(le.Namespace, kube.InClusterNamespace()), Name: le.LeaseName,
		LeaseDuration: le.LeaseDuration, RenewDeadline: le.RenewDeadline, RetryPeriod: le.RetryPeriod,
		Logger: log.With(logger, "component", "leader_election"),
	}
	g.Add(func() error {
		srcErr := make(chan error, 1)
		err := kube.RunAsLeader(ctx, lo, func(lctx context.Context) {
			if err := src.Run(lctx); err != nil {
				srcErr <- err
				cancel()
			}
		})
		select {
		case e := <-srcErr:
			return e
		default:
			return err
		}
	}, func(error) { cancel() })
	return nil
}

// querierCache builds one query client per data source and reuses it while
// the data source is unchanged.
type querierCache struct {
	defaults promapi.ClientConfig
	mu       sync.Mutex
	def      *promapi.Client
	byName   map[string]cachedClient
}

type cachedClient struct {
	spec   policy.DataSourceSpec
	client *promapi.Client
}

func (q *querierCache) get(ds *policy.DataSource) (forecast.Querier, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if ds == nil {
		if q.def == nil {
			c, err := promapi.NewClient(q.defaults)
			if err != nil {
				return nil, err
			}
			q.def = c
		}
		return q.def, nil
	}
	if q.byName == nil {
		q.byName = map[string]cachedClient{}
	}
	if cc, ok := q.byName[ds.Metadata.Name]; ok && reflect.DeepEqual(cc.spec, ds.Spec) {
		return cc.client, nil
	}
	c, err := promapi.NewClient(promapi.ClientConfig{URL: ds.Spec.URL, HTTPClientConfig: ds.Spec.HTTPClientConfig, Timeout: q.defaults.Timeout, Limiter: q.defaults.Limiter})
	if err != nil {
		return nil, fmt.Errorf("data source %q: %w", ds.Metadata.Name, err)
	}
	q.byName[ds.Metadata.Name] = cachedClient{spec: ds.Spec, client: c}
	return c, nil
}

// nameValidation maps --remote-write.name-validation to its scheme.
func nameValidation(v string) model.ValidationScheme {
	if v == "legacy" {
		return model.LegacyValidation
	}
	return model.UTF8Validation
}
