//go:build livewip

package live

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const generatedForecasterWeb = "127.0.0.1:8095"

// generated is scenario 4: in Kubernetes mode a ForecastPolicy with
// spec.scaledObject gets its ScaledObject from the forecaster; the real KEDA
// operator accepts it and makes the HPA with the tolerance and scale-down
// window the policy set; the HPA scales the Deployment to the forecast;
// deleting the policy deletes the ScaledObject and the HPA (owner
// references, the garbage collector and KEDA's finalizer).
func generated(t *testing.T, e *env, s *feedSignal, k *kedastral) {
	const ns = "generated"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	crds, _ := filepath.Glob(filepath.Join(repoRoot, "deploy", "crds", "kedastral.io_*.yaml"))
	if len(crds) != 2 {
		t.Fatalf("want 2 CRD files in deploy/crds, found %v", crds)
	}
	for _, f := range crds {
		e.applyFile(ctx, t, f)
	}
	e.namespace(t, ns)
	e.applyYAML(ctx, t, deploymentYAML(ns, "api", 1))
	fc := e.start(t, "kedastral-forecaster-kubernetes", nil, k.bin, "forecaster",
		"--policies.source=kubernetes", "--kubeconfig="+e.kubeconfig, "--kubernetes.namespaces="+ns,
		"--prometheus.url="+k.promURL, "--web.listen-address="+generatedForecasterWeb)
	e.waitHTTP(t, "http://"+generatedForecasterWeb+"/-/ready", nil, "", time.Minute, fc)
	e.applyYAML(ctx, t, fmt.Sprintf(`apiVersion: kedastral.io/v1alpha1
kind: ForecastPolicy
metadata: {name: api, namespace: %s}
spec:
  targetRef: {name: api}
  metric: app_rps
  horizon: 15m
  leadTime: 5m
  interval: 10s
  step: 1m
  capacity:
    targetPerPod: 1000
    min: 1
    max: 30
    tolerance: 0.05
    hpaScaleDownStabilization: 2m
  model: {type: baseline, quantile: 0.85}
  sources: [{name: rps, type: prometheus, query: 'sum(app_rps{job="api"})'}]
  scaledObject:
    scalerAddress: %q
    pollingInterval: %d
`, ns, scalerGRPC, pollingInterval))

	hpas := e.kube.AutoscalingV2().HorizontalPodAutoscalers(ns)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		h, err := hpas.Get(ctx, "keda-hpa-api", metav1.GetOptions{})
		if err == nil {
			b := h.Spec.Behavior
			if b == nil || b.ScaleDown == nil || b.ScaleDown.StabilizationWindowSeconds == nil || *b.ScaleDown.StabilizationWindowSeconds != 120 {
				t.Errorf("HPA keda-hpa-api behavior %+v: want the policy's scale-down window, 120 s", b)
			}
			if b == nil || b.ScaleUp == nil || b.ScaleUp.Tolerance == nil || b.ScaleUp.Tolerance.AsApproximateFloat64() != 0.05 {
				t.Errorf("HPA keda-hpa-api behavior %+v: want the policy's scale-up tolerance 0.05", b)
			}
			if h.Spec.MaxReplicas != 30 || h.Spec.MinReplicas == nil || *h.Spec.MinReplicas != 1 {
				t.Errorf("HPA keda-hpa-api replicas [%v, %d], want the policy's [1, 30]", h.Spec.MinReplicas, h.Spec.MaxReplicas)
			}
			t.Logf("KEDA made HPA keda-hpa-api from the generated ScaledObject: min 1, max %d, scale-down window 120 s, tolerance 0.05", h.Spec.MaxReplicas)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no HPA keda-hpa-api in %s within 2m: %v", ns, err)
		}
		time.Sleep(time.Second)
	}
	// The HPA scales the Deployment to the forecast.
	deadline = time.Now().Add(2 * time.Minute)
	for {
		d, err := e.kube.AppsV1().Deployments(ns).Get(ctx, "api", metav1.GetOptions{})
		if err == nil && d.Spec.Replicas != nil && *d.Spec.Replicas > 1 {
			t.Logf("the generated ScaledObject's HPA scaled %s/api to %d", ns, *d.Spec.Replicas)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/api not scaled above 1 within 2m", ns)
		}
		time.Sleep(time.Second)
	}

	// Deleting the policy deletes the ScaledObject, and KEDA the HPA.
	if err := e.dyn.Resource(gvrs["ForecastPolicy"]).Namespace(ns).Delete(ctx, "api", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(2 * time.Minute)
	for {
		_, soErr := e.dyn.Resource(gvrs["ScaledObject"]).Namespace(ns).Get(ctx, "api", metav1.GetOptions{})
		_, hErr := hpas.Get(ctx, "keda-hpa-api", metav1.GetOptions{})
		if apierrors.IsNotFound(soErr) && apierrors.IsNotFound(hErr) {
			t.Log("deleting the policy deleted the ScaledObject and the HPA")
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("2m after the policy's deletion: ScaledObject %v, HPA %v", soErr, hErr)
		}
		time.Sleep(time.Second)
	}
}
