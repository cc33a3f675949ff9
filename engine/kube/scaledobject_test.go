package kube

import (
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/kedastral/kedastral/engine/policy"
)

func soPolicy(t *testing.T, extra string) *policy.ForecastPolicy {
	t.Helper()
	set, errs := policy.Parse([]byte(`apiVersion: kedastral.io/v1alpha1
kind: ForecastPolicy
metadata: {name: api, namespace: shop}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: api}
  horizon: 30m
  leadTime: 3m
  capacity: {targetPerPod: 100, min: 2, max: 40, hpaScaleDownStabilization: 10m}
  sources: [{name: rps, query: 'sum(rate(http_requests_total[1m]))'}]
  scaledObject:
    scalerAddress: kedastral-scaler.kedastral.svc:50051
`+extra), "p.yaml")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	p := set.Policies[0]
	p.Metadata.Namespace = "shop"
	return p
}

// TestApplyScaledObject: a new ScaledObject gets the policy's target,
// bounds, the HPA's scale-down window and the kedastral trigger; on an
// existing one the same fields are set and everything else (the user's
// reactive trigger, fallback, the rest of the behavior) is kept, and a
// second apply changes nothing.
func TestApplyScaledObject(t *testing.T) {
	owner := metav1.OwnerReference{APIVersion: "kedastral.io/v1alpha1", Kind: "ForecastPolicy", Name: "api", UID: "u-1", Controller: new(true)}
	p := soPolicy(t, "    pollingInterval: 15\n    triggerMetadata: {maxForecastAge: 2m}\n")

	fresh := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject"}}
	if !applyScaledObject(fresh, p, owner) {
		t.Fatal("a new object did not change")
	}
	want := map[string]any{}
	if err := yaml.Unmarshal([]byte(`
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  labels: {app.kubernetes.io/managed-by: kedastral}
  ownerReferences: [{apiVersion: kedastral.io/v1alpha1, kind: ForecastPolicy, name: api, uid: u-1, controller: true}]
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: api}
  minReplicaCount: 2
  maxReplicaCount: 40
  pollingInterval: 15
  advanced: {horizontalPodAutoscalerConfig: {behavior: {scaleDown: {stabilizationWindowSeconds: 600, tolerance: "0.1"}, scaleUp: {tolerance: "0.1"}}}}
  triggers:
    - type: external
      name: kedastral
      metadata: {scalerAddress: "kedastral-scaler.kedastral.svc:50051", policy: api, policyNamespace: shop, maxForecastAge: 2m}
`), &want); err != nil {
		t.Fatal(err)
	}
	if got := normalize(t, fresh.Object); !reflect.DeepEqual(got, want) {
		t.Errorf("new ScaledObject:\n%s\nwant:\n%s", dump(t, got), dump(t, want))
	}

	var existing map[string]any
	if err := yaml.Unmarshal([]byte(`
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: api
  ownerReferences: [{apiVersion: kedastral.io/v1alpha1, kind: ForecastPolicy, name: api, uid: u-1, controller: true}]
spec:
  scaleTargetRef: {name: old}
  maxReplicaCount: 10
  fallback: {failureThreshold: 3, replicas: 10}
  advanced: {horizontalPodAutoscalerConfig: {behavior: {scaleDown: {stabilizationWindowSeconds: 300, policies: [{type: Percent, value: 20, periodSeconds: 60}]}}}}
  triggers:
    - {type: external, name: kedastral, metadata: {scalerAddress: "old:1", policy: api}, authenticationRef: {name: kedastral-tls}}
    - {type: prometheus, name: reactive, metadata: {serverAddress: "http://prometheus:9090", query: "sum(x)", threshold: "100"}}
`), &existing); err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: existing}
	if !applyScaledObject(u, p, owner) {
		t.Fatal("an outdated object did not change")
	}
	got := normalize(t, u.Object)
	spec := got["spec"].(map[string]any)
	if spec["maxReplicaCount"] != float64(40) || !reflect.DeepEqual(spec["fallback"], map[string]any{"failureThreshold": float64(3), "replicas": float64(10)}) {
		t.Errorf("spec %v", spec)
	}
	sd := spec["advanced"].(map[string]any)["horizontalPodAutoscalerConfig"].(map[string]any)["behavior"].(map[string]any)["scaleDown"].(map[string]any)
	if sd["stabilizationWindowSeconds"] != float64(600) || sd["policies"] == nil {
		t.Errorf("scaleDown %v: want the window set and the policies kept", sd)
	}
	triggers := spec["triggers"].([]any)
	if len(triggers) != 2 || triggers[0].(map[string]any)["metadata"].(map[string]any)["scalerAddress"] != "kedastral-scaler.kedastral.svc:50051" ||
		triggers[1].(map[string]any)["name"] != "reactive" {
		t.Errorf("triggers %v: want kedastral's updated and the reactive one kept", triggers)
	}
	if ref := triggers[0].(map[string]any)["authenticationRef"]; !reflect.DeepEqual(ref, map[string]any{"name": "kedastral-tls"}) {
		t.Errorf("kedastral trigger's authenticationRef %v: want it kept", ref)
	}
	if refs := u.GetOwnerReferences(); len(refs) != 1 {
		t.Errorf("owner references %v", refs)
	}
	if applyScaledObject(u, p, owner) {
		t.Error("a second apply changed the object")
	}
}

// normalize round-trips an object through JSON, as the API server stores it.
func normalize(t *testing.T, o map[string]any) map[string]any {
	t.Helper()
	b, err := yaml.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := yaml.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func dump(t *testing.T, o map[string]any) string {
	b, _ := yaml.Marshal(o)
	return string(b)
}

// TestCheckTrigger: the trigger's metadata goes through the scaler's own
// parser before a ScaledObject is written, and a key it does not know is
// named.
func TestCheckTrigger(t *testing.T) {
	if err := checkTrigger(soPolicy(t, "    triggerMetadata: {maxForecastAge: 2m, matchLabels: 'svc=api'}\n")); err != nil {
		t.Errorf("valid metadata: %v", err)
	}
	err := checkTrigger(soPolicy(t, "    triggerMetadata: {maxForcastAge: 2m}\n"))
	if err == nil || !strings.Contains(err.Error(), "maxForcastAge") || !strings.Contains(err.Error(), "unknown key") {
		t.Errorf("a misspelt key: %v", err)
	}
}
