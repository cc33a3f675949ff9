package deploytest

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// flagValue is the value of --name=value in args, and whether it is there.
func flagValue(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// readURLs are the query API base URLs that serve what a remote-write URL
// takes: the same Prometheus-compatible server, or the query side of the
// stores in the install docs' table (Mimir, Thanos Receive, VictoriaMetrics
// single and cluster) with their chart's conventional service names.
func readURLs(write string) ([]string, error) {
	u, err := url.Parse(write)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("remote-write URL %q is not a URL", write)
	}
	host, port := u.Hostname(), u.Port()
	with := func(h, p, path string) string {
		v := *u
		v.Host, v.Path = h, path
		if p != "" {
			v.Host += ":" + p
		}
		return v.String()
	}
	var out []string
	switch {
	case strings.HasSuffix(u.Path, "/api/v1/write"):
		// Prometheus (--web.enable-remote-write-receiver), VictoriaMetrics single.
		base := strings.TrimSuffix(u.Path, "/api/v1/write")
		out = append(out, with(host, port, base))
		// VictoriaMetrics cluster: vminsert /insert/<tenant>/prometheus/api/v1/write,
		// vmselect /select/<tenant>/prometheus.
		if rest, ok := strings.CutPrefix(base, "/insert/"); ok && strings.Contains(host, "vminsert") {
			out = append(out, with(strings.Replace(host, "vminsert", "vmselect", 1), "8481", "/select/"+rest))
		}
	case strings.HasSuffix(u.Path, "/api/v1/push") && strings.Contains(host, "distributor"):
		// Mimir: the distributor takes, the query-frontend serves /prometheus.
		out = append(out, with(strings.Replace(host, "distributor", "query-frontend", 1), port, "/prometheus"))
	case strings.HasSuffix(u.Path, "/api/v1/receive") && strings.Contains(host, "receive"):
		// Thanos Receive: Thanos Query serves what it holds.
		out = append(out, with(strings.Replace(host, "receive", "query", 1), "9090", ""))
	default:
		return nil, fmt.Errorf("remote-write URL %q is no store this test knows (Prometheus /api/v1/write, Mimir, Thanos Receive, VictoriaMetrics)", write)
	}
	return out, nil
}

// checkStore asserts that a build's forecaster remote-writes (its
// --remote-write.url, by default --prometheus.url + /api/v1/write as the
// forecaster derives it) into the store whose query API the forecaster
// (--prometheus.url) and the scaler (--prometheus.url) read.
func checkStore(t *testing.T, objs []object) {
	t.Helper()
	if err := storeAgrees(objs); err != nil {
		t.Error(err)
	}
}

func storeAgrees(objs []object) error {
	var fargs, sargs []string
	for _, o := range objs {
		switch {
		case (o.kind() == "Deployment" || o.kind() == "StatefulSet") && strings.HasSuffix(o.name(), "-forecaster"):
			fargs = containerArgs(o)
		case o.kind() == "Deployment" && strings.HasSuffix(o.name(), "-scaler"):
			sargs = containerArgs(o)
		}
	}
	if fargs == nil || sargs == nil {
		return fmt.Errorf("want a forecaster and a scaler, got args %q and %q", fargs, sargs)
	}
	fread, ok := flagValue(fargs, "--prometheus.url")
	if !ok {
		return fmt.Errorf("forecaster args %q have no --prometheus.url", fargs)
	}
	sread, ok := flagValue(sargs, "--prometheus.url")
	if !ok {
		return fmt.Errorf("scaler args %q have no --prometheus.url", sargs)
	}
	write, ok := flagValue(fargs, "--remote-write.url")
	if !ok {
		// The forecaster's default (cmd/kedastral defaultRemoteWriteURL).
		u, err := url.Parse(fread)
		if err != nil {
			return fmt.Errorf("forecaster --prometheus.url=%q: %v", fread, err)
		}
		write = u.JoinPath("api", "v1", "write").String()
	}
	reads, err := readURLs(write)
	if err != nil {
		return err
	}
	norm := func(s string) string { return strings.TrimSuffix(s, "/") }
	for who, r := range map[string]string{"forecaster": fread, "scaler": sread} {
		if !slices.ContainsFunc(reads, func(x string) bool { return norm(x) == norm(r) }) {
			return fmt.Errorf("the forecaster writes to %s, which is read at %q, but the %s reads --prometheus.url=%s", write, reads, who, r)
		}
	}
	return nil
}

func deployment(name string, args ...string) object {
	c := map[string]any{"name": "c", "args": toAny(args)}
	return object{"kind": "Deployment", "metadata": map[string]any{"name": name},
		"spec": map[string]any{"template": map[string]any{"spec": map[string]any{"containers": []any{c}}}}}
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// TestStoreAgrees: the rule checkStore applies accepts the stores of the
// install docs' table and the default, and catches the mistakes it is there
// for, such as the old example overlay's write to VictoriaMetrics while
// reading kube-prometheus-stack's Prometheus.
func TestStoreAgrees(t *testing.T) {
	const kps = "http://kube-prometheus-stack-prometheus.monitoring:9090"
	for _, tc := range []struct {
		name          string
		write, fr, sr string
		ok            bool
	}{
		{"default write", "", kps, kps, true},
		{"same prometheus", kps + "/api/v1/write", kps, kps, true},
		{"prometheus with a path prefix", "http://p.example:9090/prom/api/v1/write", "http://p.example:9090/prom", "http://p.example:9090/prom/", true},
		{"mimir", "http://mimir-distributor.mimir:8080/api/v1/push", "http://mimir-query-frontend.mimir:8080/prometheus", "http://mimir-query-frontend.mimir:8080/prometheus", true},
		{"thanos receive", "http://thanos-receive.thanos:19291/api/v1/receive", "http://thanos-query.thanos:9090", "http://thanos-query.thanos:9090", true},
		{"victoriametrics single", "http://victoria-metrics.vm:8428/api/v1/write", "http://victoria-metrics.vm:8428", "http://victoria-metrics.vm:8428", true},
		{"victoriametrics cluster", "http://vminsert.vm:8480/insert/0/prometheus/api/v1/write", "http://vmselect.vm:8481/select/0/prometheus", "http://vmselect.vm:8481/select/0/prometheus", true},
		{"vminsert, read kube-prometheus-stack", "http://vminsert.monitoring:8480/insert/0/prometheus/api/v1/write", kps, kps, false},
		{"vm cluster, other tenant", "http://vminsert.vm:8480/insert/0/prometheus/api/v1/write", "http://vmselect.vm:8481/select/1/prometheus", "http://vmselect.vm:8481/select/1/prometheus", false},
		{"scaler reads another prometheus", "", kps, "http://prometheus.other:9090", false},
		{"forecaster reads elsewhere", "http://mimir-distributor.mimir:8080/api/v1/push", kps, "http://mimir-query-frontend.mimir:8080/prometheus", false},
		{"unknown store", "http://example.com/ingest", kps, kps, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fargs := []string{"forecaster", "--prometheus.url=" + tc.fr}
			if tc.write != "" {
				fargs = append(fargs, "--remote-write.url="+tc.write)
			}
			err := storeAgrees([]object{deployment("k-forecaster", fargs...), deployment("k-scaler", "scaler", "--prometheus.url="+tc.sr)})
			if (err == nil) != tc.ok {
				t.Errorf("storeAgrees: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}
