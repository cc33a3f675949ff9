package kube_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kedastral/kedastral/promapi/promtest"
	"github.com/kedastral/kedastral/test/testutil"
)

var klogLine = regexp.MustCompile(`(?m)^[IWEF]\d{4} \d\d:\d\d:\d\d.*$`)

// policiesRunning asks a forecaster's /api/v1/policies how many policies it
// runs; -1 when it does not answer.
func policiesRunning(web string) int {
	resp, err := http.Get("http://" + web + "/api/v1/policies")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var r struct {
		Data []json.RawMessage `json:"data"`
	}
	if json.NewDecoder(resp.Body).Decode(&r) != nil {
		return -1
	}
	return len(r.Data)
}

// TestLeaderElection runs two forecasters with leader election: one runs
// the policies, the other stands by with none, and takes over when the
// leader is killed.
func TestLeaderElection(t *testing.T) {
	c := getCluster(t)
	prom := promtest.StartInT(t, testutil.LoadHistory(t), promtest.Options{})
	ns := c.namespace(t, "leader")
	c.applyYAML(t, policyYAML("api", ns, "", "", ""))

	type replica struct {
		web string
		*testutil.Proc
	}
	start := func() *replica {
		web := testutil.FreeAddr(t)
		p := testutil.Start(t, testutil.ProcOptions{Name: "forecaster " + web}, testutil.Kedastral(t),
			"forecaster", "--policies.source=kubernetes", "--kubeconfig="+c.kubeconfig,
			"--prometheus.url="+prom.URL(), "--web.listen-address="+web, "--kubernetes.namespaces="+ns,
			"--kubernetes.debounce=200ms", "--kubernetes.status-interval=300ms",
			"--leader-election.enabled", "--leader-election.namespace="+ns, "--leader-election.lease-name=kedastral-test",
			"--leader-election.lease-duration=3s", "--leader-election.renew-deadline=2s", "--leader-election.retry-period=500ms")
		return &replica{web, p}
	}
	t0 := time.Now()
	r1, r2 := start(), start()
	var leader, standby *replica
	testutil.Eventually(t, 30*time.Second, "one leader running the policy", func() (string, bool) {
		n1, n2 := policiesRunning(r1.web), policiesRunning(r2.web)
		switch {
		case n1 == 1 && n2 == 0:
			leader, standby = r1, r2
		case n2 == 1 && n1 == 0:
			leader, standby = r2, r1
		default:
			return fmt.Sprintf("policies running: %d and %d", n1, n2), false
		}
		return "", true
	})
	t.Logf("a leader runs the policy %s after the start", time.Since(t0).Round(100*time.Millisecond))
	// It stays that way: the standby does not run the policy meanwhile.
	for range 5 {
		time.Sleep(400 * time.Millisecond)
		if n := policiesRunning(standby.web); n != 0 {
			t.Fatalf("the standby runs %d policies while the leader lives", n)
		}
	}
	if !strings.Contains(standby.Logs.String(), "another replica leads") {
		t.Error("the standby does not log that another replica leads")
	}
	// client-go's own log lines (klog) come in the forecaster's format.
	for _, r := range []*replica{r1, r2} {
		if l := klogLine.FindString(r.Logs.String()); l != "" {
			t.Errorf("a klog line in the forecaster's log: %q", l)
		}
	}

	// Kill the leader without a chance to release the Lease: the standby
	// takes over once the Lease expires, and the Ready condition does not
	// flap on the way (its transition time stays).
	readyAt := func() string {
		conds, _, _ := unstructured.NestedSlice(c.getPolicy(t, ns, "api").Object, "status", "conditions")
		for _, x := range conds {
			if m, _ := x.(map[string]any); m["type"] == "Ready" && m["status"] == "True" {
				return m["lastTransitionTime"].(string)
			}
		}
		return ""
	}
	var readySince string
	testutil.Eventually(t, 30*time.Second, "Ready=True under the first leader", func() (string, bool) {
		readySince = readyAt()
		return readySince, readySince != ""
	})
	killed := time.Now()
	_ = leader.Kill()
	testutil.Eventually(t, 30*time.Second, "the standby taking over", func() (string, bool) {
		n := policiesRunning(standby.web)
		return fmt.Sprint(n), n == 1
	})
	t.Logf("standby took over %s after the leader was killed (lease duration 3s)", time.Since(killed).Round(100*time.Millisecond))
	testutil.Eventually(t, 30*time.Second, "the new leader writing the policy's status", func() (string, bool) {
		st := c.getPolicy(t, ns, "api")
		s, _, _ := condition(st, "Ready")
		ts, _, _ := unstructured.NestedString(st.Object, "status", "lastEvaluationTime")
		at, err := time.Parse(time.RFC3339, ts)
		return statusString(st) + " " + time.Since(killed).String(), s == "True" && err == nil && at.After(killed)
	})
	if now := readyAt(); now != readySince {
		t.Errorf("Ready flapped over the change of leader: True since %s, now since %q", readySince, now)
	}
	t.Logf("status written by the new leader %s after the kill", time.Since(killed).Round(100*time.Millisecond))
}
