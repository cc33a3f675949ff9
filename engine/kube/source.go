// Package kube makes the Kubernetes API a source of policies: it watches
// ForecastPolicy and DataSource custom resources with client-go's dynamic
// informers, runs them through the same decoding and validation as policy
// files (engine/policy), hands the result to the forecast loop
// (forecast.Manager.Apply) and writes what the loop reports back into each
// object's status subresource.
package kube

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"go.yaml.in/yaml/v2"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/kedastral/kedastral/engine/forecast"
	"github.com/kedastral/kedastral/engine/policy"
)

// The resources watched.
var (
	PolicyResource     = schema.GroupVersionResource{Group: "kedastral.io", Version: "v1alpha1", Resource: "forecastpolicies"}
	DataSourceResource = schema.GroupVersionResource{Group: "kedastral.io", Version: "v1alpha1", Resource: "datasources"}
)

// Manager is what the source drives; *forecast.Manager is one. It must be
// created with forecast.Options.PolicyNamespaces.
type Manager interface {
	Apply(set *policy.Set, loadErrs []error) error
	Status() []forecast.PolicyStatus
}

// Options configure a Source.
type Options struct {
	Config *rest.Config
	// Namespaces to watch; all of them when empty.
	Namespaces []string
	Manager    Manager
	Logger     log.Logger
	// Debounce is how long the source waits after an event for more before
	// it applies them all at once (default 1s); a steady stream of events
	// is applied at least every 5 Debounce.
	Debounce time.Duration
	// StatusInterval is how often statuses are compared with the manager's
	// report and written where they changed (default 2s).
	StatusInterval time.Duration
	// StatusRefresh: a status whose only change is its lastEvaluationTime is
	// written once this long has passed since the last write (default 1m),
	// so a policy evaluated every 30s does not cost a write every cycle.
	StatusRefresh time.Duration
	// Now is the clock; time.Now by default.
	Now func() time.Time
}

// Source watches the policies and keeps the manager and the statuses current.
type Source struct {
	opts   Options
	client dynamic.Interface
	logger log.Logger

	changed chan struct{}

	mu        sync.Mutex
	policyInf []cache.SharedIndexInformer
	dsInf     []cache.SharedIndexInformer
	// invalid maps "namespace/name" of an object to its load error, per kind.
	invalid map[string]*policy.Error
	// written is the status last written per kind and "namespace/name".
	written map[string]writtenStatus
	// applied is the generation of each object (kind/namespace/name) in the
	// last apply: a status describes the generation the loop runs, so an
	// object changed since waits for the next apply.
	applied map[string]int64
	// applies counts Apply calls, for tests and the log.
	applies int
	// scaledObjects is the outcome of the last reconcile of each policy's
	// ScaledObject ("namespace/name"), for its status.
	scaledObjects map[string]scaledObjectState
	// reconciled is when the ScaledObjects were last reconciled, from the
	// set and objects of the last apply.
	reconciled   time.Time
	lastSet      *policy.Set
	lastPolicies []*unstructured.Unstructured
}

type writtenStatus struct {
	generation int64
	status     map[string]any
	at         time.Time
}

// New returns a Source; Run starts it.
func New(opts Options) (*Source, error) {
	if opts.Config == nil || opts.Manager == nil {
		return nil, errors.New("kube: Config and Manager are required")
	}
	if opts.Logger == nil {
		opts.Logger = log.NewNopLogger()
	}
	if opts.Debounce <= 0 {
		opts.Debounce = time.Second
	}
	if opts.StatusInterval <= 0 {
		opts.StatusInterval = 2 * time.Second
	}
	if opts.StatusRefresh <= 0 {
		opts.StatusRefresh = time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Config.QPS == 0 {
		// client-go's default of 5 requests a second would take minutes
		// to write the statuses of a thousand policies after a start.
		cfg := rest.CopyConfig(opts.Config)
		cfg.QPS, cfg.Burst = 50, 100
		opts.Config = cfg
	}
	client, err := dynamic.NewForConfig(opts.Config)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return &Source{opts: opts, client: client, logger: opts.Logger, changed: make(chan struct{}, 1),
		invalid: map[string]*policy.Error{}, written: map[string]writtenStatus{}, applied: map[string]int64{}}, nil
}

// Run watches until ctx is done. It returns an error when the informers
// cannot sync within a minute (no CRDs, no permission).
func (s *Source) Run(ctx context.Context) error {
	namespaces := s.opts.Namespaces
	if len(namespaces) == 0 {
		namespaces = []string{""} // metav1.NamespaceAll
	}
	var synced []cache.InformerSynced
	for _, ns := range namespaces {
		f := dynamicinformer.NewFilteredDynamicSharedInformerFactory(s.client, 0, ns, nil)
		pi := f.ForResource(PolicyResource).Informer()
		di := f.ForResource(DataSourceResource).Informer()
		for _, inf := range []cache.SharedIndexInformer{pi, di} {
			if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
				AddFunc:    func(any) { s.notify() },
				DeleteFunc: func(any) { s.notify() },
				UpdateFunc: func(old, cur any) {
					if specChanged(old, cur) {
						s.notify()
					}
				},
			}); err != nil {
				return err
			}
			synced = append(synced, inf.HasSynced)
		}
		s.mu.Lock()
		s.policyInf = append(s.policyInf, pi)
		s.dsInf = append(s.dsInf, di)
		s.mu.Unlock()
		f.Start(ctx.Done())
	}
	syncCtx, cancel := context.WithTimeout(ctx, time.Minute)
	ok := cache.WaitForCacheSync(syncCtx.Done(), synced...)
	cancel()
	if !ok {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("watching %s and %s in namespaces %q: caches did not sync within a minute (are the CRDs installed, and may the forecaster list them?)",
			PolicyResource.Resource, DataSourceResource.Resource, namespaces)
	}
	level.Info(s.logger).Log("msg", "watching policies in the Kubernetes API", "namespaces", strings.Join(s.opts.Namespaces, ","))
	s.apply(ctx)

	statusTick := time.NewTicker(s.opts.StatusInterval)
	defer statusTick.Stop()
	var debounce <-chan time.Time
	var first time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.changed:
			now := time.Now()
			if debounce == nil {
				first = now
			}
			// Wait for a quiet Debounce, but not past 5 of them since the
			// first event of the burst.
			wait := min(s.opts.Debounce, first.Add(5*s.opts.Debounce).Sub(now))
			debounce = time.After(max(wait, 0))
		case <-debounce:
			debounce = nil
			s.apply(ctx)
			s.writeStatuses(ctx)
		case <-statusTick.C:
			// A ScaledObject changed by hand gets the policy's fields
			// back within a minute.
			if s.opts.Now().Sub(s.reconciled) >= scaledObjectResync {
				s.reconcileLast(ctx)
			}
			s.writeStatuses(ctx)
		}
	}
}

func (s *Source) notify() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// specChanged ignores updates that only touch status or bookkeeping
// metadata, such as the source's own status writes.
func specChanged(old, cur any) bool {
	o, ok1 := old.(*unstructured.Unstructured)
	c, ok2 := cur.(*unstructured.Unstructured)
	if !ok1 || !ok2 {
		return true
	}
	return o.GetGeneration() != c.GetGeneration() || !maps.Equal(o.GetLabels(), c.GetLabels()) ||
		!maps.Equal(o.GetAnnotations(), c.GetAnnotations())
}

// Applies returns how many times the source has applied the policies.
func (s *Source) Applies() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applies
}

func list(infs []cache.SharedIndexInformer) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, inf := range infs {
		for _, o := range inf.GetStore().List() {
			if u, ok := o.(*unstructured.Unstructured); ok {
				out = append(out, u)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return objKey(out[i]) < objKey(out[j]) })
	return out
}

func objKey(u *unstructured.Unstructured) string { return u.GetNamespace() + "/" + u.GetName() }

// scaledObjectResync is how often the generated ScaledObjects are checked
// without a change of their policies.
const scaledObjectResync = time.Minute

// reconcileLast reconciles the ScaledObjects of the policies of the last apply.
func (s *Source) reconcileLast(ctx context.Context) {
	s.mu.Lock()
	set, objs := s.lastSet, s.lastPolicies
	s.mu.Unlock()
	if set != nil {
		s.reconcileScaledObjects(ctx, set, objs)
	}
	s.reconciled = s.opts.Now()
}

// apply builds a policy.Set from the cached objects, hands it to the
// manager and keeps the ScaledObjects the policies ask for.
func (s *Source) apply(ctx context.Context) {
	s.mu.Lock()
	policies, sources := list(s.policyInf), list(s.dsInf)
	s.mu.Unlock()
	set, errs := Build(policies, sources)
	invalid := map[string]*policy.Error{}
	for _, err := range errs {
		var pe *policy.Error
		if errors.As(err, &pe) {
			invalid[pe.Kind+"/"+pe.Name] = pe
		}
		level.Error(s.logger).Log("msg", "invalid object", "err", err)
	}
	if err := s.opts.Manager.Apply(set, errs); err != nil {
		level.Error(s.logger).Log("msg", "applying policies", "err", err)
	}
	applied := map[string]int64{}
	for _, u := range policies {
		applied[policy.KindForecastPolicy+"/"+objKey(u)] = u.GetGeneration()
	}
	for _, u := range sources {
		applied[policy.KindDataSource+"/"+objKey(u)] = u.GetGeneration()
	}
	s.mu.Lock()
	s.invalid = invalid
	s.applied = applied
	s.applies++
	s.lastSet, s.lastPolicies = set, policies
	s.mu.Unlock()
	s.reconcileLast(ctx)
	level.Info(s.logger).Log("msg", "policies applied", "policies", len(set.Policies), "data_sources", len(set.DataSources), "invalid", len(errs))
}

// Build decodes and validates the objects as engine/policy does a policy
// file, namespace by namespace (a dataSourceRef names a DataSource of the
// policy's namespace). In the result, a DataSource is named
// "namespace/name" and each policy's dataSourceRef says so, so that names
// repeated across namespaces stay apart; errors name their object
// "namespace/name".
func Build(policies, sources []*unstructured.Unstructured) (*policy.Set, []error) {
	byNS := map[string][][]byte{}
	var errs []error
	add := func(u *unstructured.Unstructured) {
		doc, err := reduce(u)
		if err != nil {
			errs = append(errs, &policy.Error{File: "namespace " + u.GetNamespace(), Kind: u.GetKind(), Name: objKey(u), Err: err})
			return
		}
		byNS[u.GetNamespace()] = append(byNS[u.GetNamespace()], doc)
	}
	// DataSources first, so that a policy's error line numbers (if any)
	// follow them; references resolve in any order.
	for _, u := range sources {
		add(u)
	}
	for _, u := range policies {
		add(u)
	}
	out := &policy.Set{DataSources: map[string]*policy.DataSource{}}
	for _, ns := range slices.Sorted(maps.Keys(byNS)) {
		docs := byNS[ns]
		set, perrs := policy.Parse(joinDocs(docs), "namespace "+ns)
		for _, err := range perrs {
			var pe *policy.Error
			if errors.As(err, &pe) && pe.Name != "" {
				// Line numbers of the re-encoded stream mean nothing to the
				// user; the object and field do.
				errs = append(errs, &policy.Error{File: "namespace " + ns, Kind: pe.Kind, Name: ns + "/" + pe.Name, Field: pe.Field, Err: pe.Err})
				continue
			}
			errs = append(errs, err)
		}
		if set == nil {
			continue
		}
		for name, ds := range set.DataSources {
			ds.Metadata.Name = ns + "/" + name
			out.DataSources[ns+"/"+name] = ds
		}
		for _, p := range set.Policies {
			if p.Spec.DataSourceRef != nil {
				p.Spec.DataSourceRef = &policy.LocalObjectReference{Name: ns + "/" + p.Spec.DataSourceRef.Name}
			}
			p.Metadata.Namespace = ns
			out.Policies = append(out.Policies, p)
		}
	}
	return out, errs
}

// reduce keeps what a policy file would hold of the object: apiVersion,
// kind, the metadata Kedastral reads and the spec (not the server's
// bookkeeping, which the strict decoder would refuse, nor the status).
func reduce(u *unstructured.Unstructured) ([]byte, error) {
	meta := map[string]any{"name": u.GetName(), "namespace": u.GetNamespace()}
	if l := u.GetLabels(); len(l) > 0 {
		meta["labels"] = l
	}
	if a := u.GetAnnotations(); len(a) > 0 {
		// kubectl's last-applied-configuration repeats the spec; it is of
		// no use to the forecaster and would restart the policy on each
		// apply for nothing.
		delete(a, "kubectl.kubernetes.io/last-applied-configuration")
		if len(a) > 0 {
			meta["annotations"] = a
		}
	}
	obj := map[string]any{"apiVersion": u.GetAPIVersion(), "kind": u.GetKind(), "metadata": meta}
	if spec, ok := u.Object["spec"]; ok {
		obj["spec"] = spec
	}
	b, err := yaml.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return b, nil
}

func joinDocs(docs [][]byte) []byte {
	var b []byte
	for _, d := range docs {
		b = append(b, "---\n"...)
		b = append(b, d...)
	}
	return b
}
