package kube

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"strconv"
	"time"

	"github.com/go-kit/log/level"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kedastral/kedastral/engine/policy"
	"github.com/kedastral/kedastral/engine/scaler"
)

// ScaledObjectResource is KEDA's ScaledObject.
var ScaledObjectResource = schema.GroupVersionResource{Group: "keda.sh", Version: "v1alpha1", Resource: "scaledobjects"}

// ScaledObjectTrigger is the name of the trigger the forecaster keeps in a
// ScaledObject it generates; other triggers are the user's.
const ScaledObjectTrigger = "kedastral"

// ManagedByLabel marks the ScaledObjects the forecaster generates.
const ManagedByLabel = "app.kubernetes.io/managed-by"

// scaledObjectState is the outcome of the last reconcile of a policy's
// ScaledObject: its name, or the error.
type scaledObjectState struct {
	name string
	err  string
}

// scaledObjectName is the name of the ScaledObject kept for p.
func scaledObjectName(p *policy.ForecastPolicy) string {
	if n := p.Spec.ScaledObject.Name; n != "" {
		return n
	}
	return p.Metadata.Name
}

// triggerMetadata is the metadata of the kedastral trigger for p: the
// policy's triggerMetadata, the scaler's address and the policy.
func triggerMetadata(p *policy.ForecastPolicy) map[string]string {
	meta := maps.Clone(p.Spec.ScaledObject.TriggerMetadata)
	if meta == nil {
		meta = map[string]string{}
	}
	meta["scalerAddress"] = p.Spec.ScaledObject.ScalerAddress
	meta["policy"] = p.Metadata.Name
	if p.Metadata.Namespace != "" {
		meta["policyNamespace"] = p.Metadata.Namespace
	}
	return meta
}

// checkTrigger runs the trigger's metadata through the scaler's own parser,
// so that a ScaledObject the scaler would answer with InvalidArgument is
// not written; the error names the key.
func checkTrigger(p *policy.ForecastPolicy) error {
	if _, err := scaler.ParseMetadata(triggerMetadata(p)); err != nil {
		return fmt.Errorf("spec.scaledObject.triggerMetadata: the scaler would refuse the trigger: %w", err)
	}
	return nil
}

// applyScaledObject sets the fields the forecaster owns in obj (a
// ScaledObject, new or existing) and reports whether it changed anything.
// Everything else is left as it is: other triggers (a reactive one added by
// hand), the kedastral trigger's other keys (authenticationRef), fallback,
// cooldown, the rest of the HPA's behavior.
func applyScaledObject(obj *unstructured.Unstructured, p *policy.ForecastPolicy, owner metav1.OwnerReference) bool {
	before := obj.DeepCopy()
	s := &p.Spec
	set := func(v any, path ...string) { _ = unstructured.SetNestedField(obj.Object, v, path...) }
	target := map[string]any{"name": s.TargetRef.Name}
	if s.TargetRef.APIVersion != "" {
		target["apiVersion"] = s.TargetRef.APIVersion
	}
	if s.TargetRef.Kind != "" {
		target["kind"] = s.TargetRef.Kind
	}
	set(target, "spec", "scaleTargetRef")
	set(int64(s.Capacity.Min), "spec", "minReplicaCount")
	set(int64(s.Capacity.Max), "spec", "maxReplicaCount")
	if pi := s.ScaledObject.PollingInterval; pi != nil {
		set(int64(*pi), "spec", "pollingInterval")
	}
	behavior := []string{"spec", "advanced", "horizontalPodAutoscalerConfig", "behavior"}
	set(int64(s.Capacity.HPAScaleDownWindow()/time.Second), append(behavior, "scaleDown", "stabilizationWindowSeconds")...)
	// The HPA's tolerance as the planner assumes it, both ways. A cluster
	// without the HPAConfigurableTolerance feature ignores it and uses its
	// own (--horizontal-pod-autoscaler-tolerance, which capacity.tolerance
	// must then match).
	tol := strconv.FormatFloat(s.Capacity.ToleranceValue(), 'f', -1, 64)
	set(tol, append(behavior, "scaleUp", "tolerance")...)
	set(tol, append(behavior, "scaleDown", "tolerance")...)
	meta := map[string]any{}
	for k, v := range triggerMetadata(p) {
		meta[k] = v
	}
	trigger := map[string]any{"type": "external", "name": ScaledObjectTrigger, "metadata": meta}
	triggers, _, _ := unstructured.NestedSlice(obj.Object, "spec", "triggers")
	out := []any{trigger}
	for _, t := range triggers {
		if m, ok := t.(map[string]any); ok && m["name"] == ScaledObjectTrigger {
			// Keys the forecaster does not set stay: an authenticationRef
			// for a scaler that talks TLS, useCachedMetrics, metricType.
			for k, v := range m {
				if _, owned := trigger[k]; !owned {
					trigger[k] = v
				}
			}
			continue
		}
		out = append(out, t)
	}
	_ = unstructured.SetNestedSlice(obj.Object, out, "spec", "triggers")
	labels := obj.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[ManagedByLabel] = "kedastral"
	obj.SetLabels(labels)
	refs := obj.GetOwnerReferences()
	found := false
	for i, r := range refs {
		if r.UID == owner.UID {
			refs[i], found = owner, true
		}
	}
	if !found {
		refs = append(refs, owner)
	}
	obj.SetOwnerReferences(refs)
	return !reflect.DeepEqual(before.Object, obj.Object)
}

// ownedBy tells whether obj has a controller owner reference to the policy.
func ownedBy(obj *unstructured.Unstructured, uid string) bool {
	for _, r := range obj.GetOwnerReferences() {
		if string(r.UID) == uid {
			return true
		}
	}
	return false
}

// reconcileScaledObjects creates or updates the ScaledObject of every valid
// policy that asks for one. A ScaledObject of that name that the policy
// does not own is left alone and reported. The outcome per policy
// ("namespace/name") replaces the previous one.
func (s *Source) reconcileScaledObjects(ctx context.Context, set *policy.Set, objs []*unstructured.Unstructured) {
	byKey := map[string]*unstructured.Unstructured{}
	for _, u := range objs {
		byKey[objKey(u)] = u
	}
	state := map[string]scaledObjectState{}
	for _, p := range set.Policies {
		if p.Spec.ScaledObject == nil {
			continue
		}
		key := p.Metadata.Namespace + "/" + p.Metadata.Name
		u := byKey[key]
		if u == nil {
			continue
		}
		name := scaledObjectName(p)
		if err := s.reconcileScaledObject(ctx, p, u, name); err != nil {
			level.Warn(s.logger).Log("msg", "keeping the ScaledObject of a policy", "policy", key, "scaled_object", name, "err", err)
			state[key] = scaledObjectState{name: name, err: err.Error()}
			continue
		}
		state[key] = scaledObjectState{name: name}
	}
	s.mu.Lock()
	s.scaledObjects = state
	s.mu.Unlock()
	// The ScaledObjects each valid policy should have: one name, or none.
	want := map[types.UID]string{}
	for _, p := range set.Policies {
		u := byKey[p.Metadata.Namespace+"/"+p.Metadata.Name]
		if u == nil {
			continue
		}
		want[u.GetUID()] = ""
		if p.Spec.ScaledObject != nil {
			want[u.GetUID()] = scaledObjectName(p)
		}
	}
	s.pruneScaledObjects(ctx, want)
}

// pruneScaledObjects deletes the ScaledObjects the forecaster generated for
// a policy that no longer asks for them: spec.scaledObject removed, or its
// name changed. want maps the UID of every valid policy to the name of the
// ScaledObject it asks for ("" for none); a ScaledObject of a policy not in
// want (deleted: the garbage collector takes it; invalid: kept as it is)
// is left alone.
func (s *Source) pruneScaledObjects(ctx context.Context, want map[types.UID]string) {
	namespaces := s.opts.Namespaces
	if len(namespaces) == 0 {
		namespaces = []string{""}
	}
	for _, ns := range namespaces {
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		list, err := s.client.Resource(ScaledObjectResource).Namespace(ns).List(lctx, metav1.ListOptions{LabelSelector: ManagedByLabel + "=kedastral"})
		cancel()
		if err != nil {
			// No KEDA, or no permission (kubernetesSource.rbac.scaledObjects
			// off): nothing was generated, nothing to prune.
			if !apierrors.IsNotFound(err) && !apierrors.IsForbidden(err) {
				level.Warn(s.logger).Log("msg", "listing generated ScaledObjects", "namespace", ns, "err", err)
			}
			continue
		}
		for i := range list.Items {
			so := &list.Items[i]
			for _, r := range so.GetOwnerReferences() {
				if r.Kind != policy.KindForecastPolicy || r.Controller == nil || !*r.Controller {
					continue
				}
				name, ok := want[r.UID]
				if !ok || name == so.GetName() {
					continue
				}
				uid := so.GetUID()
				dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err := s.client.Resource(ScaledObjectResource).Namespace(so.GetNamespace()).Delete(dctx, so.GetName(),
					metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
				cancel()
				if err != nil && !apierrors.IsNotFound(err) {
					level.Warn(s.logger).Log("msg", "deleting a ScaledObject its policy no longer asks for", "scaled_object", so.GetNamespace()+"/"+so.GetName(), "err", err)
					continue
				}
				level.Info(s.logger).Log("msg", "deleted a ScaledObject its policy no longer asks for", "scaled_object", so.GetNamespace()+"/"+so.GetName(), "policy", so.GetNamespace()+"/"+r.Name)
			}
		}
	}
}

func (s *Source) reconcileScaledObject(ctx context.Context, p *policy.ForecastPolicy, u *unstructured.Unstructured, name string) error {
	if err := checkTrigger(p); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	owner := metav1.OwnerReference{
		APIVersion: u.GetAPIVersion(), Kind: u.GetKind(), Name: u.GetName(), UID: u.GetUID(),
		Controller: new(true), BlockOwnerDeletion: new(false),
	}
	rc := s.client.Resource(ScaledObjectResource).Namespace(u.GetNamespace())
	cur, err := rc.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		obj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject"}}
		obj.SetName(name)
		obj.SetNamespace(u.GetNamespace())
		applyScaledObject(obj, p, owner)
		if _, err := rc.Create(ctx, obj, metav1.CreateOptions{FieldManager: "kedastral-forecaster"}); err != nil {
			if apierrors.IsNotFound(err) {
				return fmt.Errorf("create ScaledObject %s: %w (is KEDA installed?)", name, err)
			}
			return fmt.Errorf("create ScaledObject %s: %w", name, err)
		}
		level.Info(s.logger).Log("msg", "created the ScaledObject of a policy", "policy", objKey(u), "scaled_object", name)
		return nil
	case err != nil:
		return fmt.Errorf("get ScaledObject %s: %w", name, err)
	}
	if !ownedBy(cur, string(u.GetUID())) {
		return fmt.Errorf("ScaledObject %s exists and is not this policy's (no owner reference to it); delete it or set spec.scaledObject.name", name)
	}
	if !applyScaledObject(cur, p, owner) {
		return nil
	}
	if _, err := rc.Update(ctx, cur, metav1.UpdateOptions{FieldManager: "kedastral-forecaster"}); err != nil {
		return fmt.Errorf("update ScaledObject %s: %w", name, err)
	}
	level.Info(s.logger).Log("msg", "updated the ScaledObject of a policy", "policy", objKey(u), "scaled_object", name)
	return nil
}
