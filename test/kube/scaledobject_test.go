package kube_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kedastral/kedastral/promapi/promtest"
	"github.com/kedastral/kedastral/test/prereq"
	"github.com/kedastral/kedastral/test/testutil"
)

var scaledObjectGVR = schema.GroupVersionResource{Group: "keda.sh", Version: "v1alpha1", Resource: "scaledobjects"}

// TestScaledObjectGenerated: a ForecastPolicy with spec.scaledObject gets
// its KEDA ScaledObject (KEDA's own CRD on a real API server), owned by the
// policy; a trigger added to it by hand survives a change of the policy,
// which reaches the ScaledObject; renaming it or dropping spec.scaledObject
// deletes the one generated before; a ScaledObject of that name that is not
// the policy's is left alone and the policy's status says why.
func TestScaledObjectGenerated(t *testing.T) {
	if kedaCRDs() == nil {
		prereq.Missing(t, "KEDA's CRDs are not in the Go module cache (github.com/kedacore/keda/v2@v2.21.0)")
	}
	c := getCluster(t)
	prom := promtest.StartInT(t, testutil.LoadHistory(t), promtest.Options{})
	ns := c.namespace(t, "team-so")
	logs := startForecaster(t, c, prom.URL(), "--kubernetes.namespaces="+ns)
	so := func(name string) (*unstructured.Unstructured, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return c.dyn.Resource(scaledObjectGVR).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	}
	const scaledObject = "  scaledObject:\n    scalerAddress: kedastral-scaler.kedastral.svc:50051\n    triggerMetadata: {maxForecastAge: 2m}\n"

	pol := c.applyYAML(t, policyYAML("api", ns, "{targetPerPod: 10, min: 2, max: 50}", scaledObject, ""))
	var got *unstructured.Unstructured
	testutil.Eventually(t, 30*time.Second, "the ScaledObject of "+ns+"/api", func() (string, bool) {
		var err error
		got, err = so("api")
		if err != nil {
			return err.Error(), false
		}
		return "", true
	})
	spec := got.Object["spec"].(map[string]any)
	if target, _, _ := unstructured.NestedString(got.Object, "spec", "scaleTargetRef", "name"); target != "api" ||
		spec["minReplicaCount"] != int64(2) || spec["maxReplicaCount"] != int64(50) {
		t.Errorf("spec %v", spec)
	}
	if w, _, _ := unstructured.NestedInt64(got.Object, "spec", "advanced", "horizontalPodAutoscalerConfig", "behavior", "scaleDown", "stabilizationWindowSeconds"); w != 300 {
		t.Errorf("scale-down window %d, want the policy's hpaScaleDownStabilization (5m)", w)
	}
	if tol, _, _ := unstructured.NestedString(got.Object, "spec", "advanced", "horizontalPodAutoscalerConfig", "behavior", "scaleUp", "tolerance"); tol != "0.1" {
		t.Errorf("scale-up tolerance %q, want the policy's 0.1", tol)
	}
	triggers, _, _ := unstructured.NestedSlice(got.Object, "spec", "triggers")
	if len(triggers) != 1 {
		t.Fatalf("triggers %v", triggers)
	}
	tr := triggers[0].(map[string]any)
	meta := tr["metadata"].(map[string]any)
	if tr["type"] != "external" || tr["name"] != "kedastral" || meta["policy"] != "api" || meta["policyNamespace"] != ns ||
		meta["scalerAddress"] != "kedastral-scaler.kedastral.svc:50051" || meta["maxForecastAge"] != "2m" {
		t.Errorf("trigger %v", tr)
	}
	if refs := got.GetOwnerReferences(); len(refs) != 1 || refs[0].UID != pol.GetUID() || refs[0].Kind != "ForecastPolicy" || refs[0].Controller == nil || !*refs[0].Controller {
		t.Errorf("owner references %v, want the policy (uid %s) as controller", refs, pol.GetUID())
	}
	testutil.Eventually(t, 30*time.Second, "status.scaledObject of "+ns+"/api", func() (string, bool) {
		st := c.getPolicy(t, ns, "api")
		name, _, _ := unstructured.NestedString(st.Object, "status", "scaledObject")
		return statusString(st), name == "api"
	})

	// A reactive trigger added by hand, then a change of the policy.
	reactive := map[string]any{"type": "prometheus", "name": "reactive", "metadata": map[string]any{
		"serverAddress": "http://prometheus:9090", "query": "sum(app_load)", "threshold": "10"}}
	_ = unstructured.SetNestedSlice(got.Object, append(triggers, reactive), "spec", "triggers")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.dyn.Resource(scaledObjectGVR).Namespace(ns).Update(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.applyYAML(t, policyYAML("api", ns, "{targetPerPod: 10, min: 2, max: 60}", scaledObject, ""))
	testutil.Eventually(t, 30*time.Second, "maxReplicaCount 60 with both triggers", func() (string, bool) {
		cur, err := so("api")
		if err != nil {
			return err.Error(), false
		}
		max, _, _ := unstructured.NestedInt64(cur.Object, "spec", "maxReplicaCount")
		ts, _, _ := unstructured.NestedSlice(cur.Object, "spec", "triggers")
		var names []string
		for _, x := range ts {
			names = append(names, x.(map[string]any)["name"].(string))
		}
		return strings.Join(names, ","), max == 60 && strings.Join(names, ",") == "kedastral,reactive"
	})

	// A check that changes nothing writes nothing: a new label on the
	// policy makes the forecaster apply the policies again.
	cur, err := so("api")
	if err != nil {
		t.Fatal(err)
	}
	applied := strings.Count(logs.String(), `msg="policies applied"`)
	pol = c.getPolicy(t, ns, "api")
	pol.SetLabels(map[string]string{"touched": "yes"})
	uctx, ucancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ucancel()
	if _, err := c.dyn.Resource(policyGVR).Namespace(ns).Update(uctx, pol, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, "the policies applied again", func() (string, bool) {
		n := strings.Count(logs.String(), `msg="policies applied"`)
		return fmt.Sprint(n), n > applied
	})
	if again, err := so("api"); err != nil || again.GetResourceVersion() != cur.GetResourceVersion() {
		t.Errorf("the ScaledObject was written though nothing changed: resourceVersion %s → %v (%v)", cur.GetResourceVersion(), again.GetResourceVersion(), err)
	}

	// A new name: the new ScaledObject, and the old one deleted; no
	// scaledObject any more: that one deleted too.
	c.applyYAML(t, policyYAML("api", ns, "{targetPerPod: 10, min: 2, max: 60}", strings.Replace(scaledObject, "  scaledObject:\n", "  scaledObject:\n    name: api-v2\n", 1), ""))
	testutil.Eventually(t, 30*time.Second, "api-v2 kept and api deleted", func() (string, bool) {
		_, errNew := so("api-v2")
		_, errOld := so("api")
		return fmt.Sprint(errNew, errOld), errNew == nil && apierrors.IsNotFound(errOld)
	})
	c.applyYAML(t, policyYAML("api", ns, "{targetPerPod: 10, min: 2, max: 60}", "", ""))
	testutil.Eventually(t, 30*time.Second, "api-v2 deleted", func() (string, bool) {
		_, err := so("api-v2")
		return fmt.Sprint(err), apierrors.IsNotFound(err)
	})

	// A ScaledObject that is not the policy's.
	c.applyYAML(t, `apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: taken, namespace: `+ns+`}
spec:
  scaleTargetRef: {name: other}
  triggers: [{type: cpu, metricType: Utilization, metadata: {value: "60"}}]
`)
	c.applyYAML(t, policyYAML("web", ns, "", "  scaledObject:\n    name: taken\n    scalerAddress: 'kedastral-scaler:50051'\n", ""))
	testutil.Eventually(t, 30*time.Second, "status.scaledObjectError of "+ns+"/web", func() (string, bool) {
		st := c.getPolicy(t, ns, "web")
		msg, _, _ := unstructured.NestedString(st.Object, "status", "scaledObjectError")
		return statusString(st), strings.Contains(msg, "ScaledObject taken exists and is not this policy's")
	})
	if cur, err := so("taken"); err != nil || len(cur.GetOwnerReferences()) != 0 {
		t.Errorf("the user's ScaledObject was touched: %v %v", err, cur)
	}
	if _, err := so("web"); !apierrors.IsNotFound(err) {
		t.Errorf("a ScaledObject named after the policy appeared: %v", err)
	}
}
