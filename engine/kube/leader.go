package kube

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Config returns the client configuration: from kubeconfig when not empty,
// the pod's service account otherwise.
func Config(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		c, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig %s: %w", kubeconfig, err)
		}
		return c, nil
	}
	c, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("in-cluster Kubernetes configuration (outside a cluster, pass --kubeconfig): %w", err)
	}
	return c, nil
}

// InClusterNamespace is the pod's namespace from its service account, or
// "default".
func InClusterNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil {
		if ns := strings.TrimSpace(string(b)); ns != "" {
			return ns
		}
	}
	return "default"
}

// LeaderOptions configure leader election with a Lease.
type LeaderOptions struct {
	Config        *rest.Config
	Namespace     string
	Name          string
	Identity      string
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
	Logger        log.Logger
}

// ErrLostLeadership ends RunAsLeader when the Lease is lost, so that the
// process exits and a restarted one campaigns again with no state left.
var ErrLostLeadership = errors.New("lost the leader election lease")

// RunAsLeader campaigns for the Lease and calls run while this process
// holds it. It returns nil when ctx is done, ErrLostLeadership when the
// Lease was lost while leading.
func RunAsLeader(ctx context.Context, o LeaderOptions, run func(ctx context.Context)) error {
	client, err := kubernetes.NewForConfig(o.Config)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	if o.Identity == "" {
		host, _ := os.Hostname()
		o.Identity = fmt.Sprintf("%s_%d", host, time.Now().UnixNano())
	}
	if o.Logger == nil {
		o.Logger = log.NewNopLogger()
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: o.Namespace, Name: o.Name},
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: o.Identity},
	}
	lost := make(chan struct{})
	var led atomic.Bool
	runDone := make(chan struct{})
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   o.LeaseDuration,
		RenewDeadline:   o.RenewDeadline,
		RetryPeriod:     o.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            o.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				defer close(runDone)
				led.Store(true)
				level.Info(o.Logger).Log("msg", "leading: running the policies", "lease", o.Namespace+"/"+o.Name, "identity", o.Identity)
				run(ctx)
			},
			OnStoppedLeading: func() {
				if led.Load() && ctx.Err() == nil {
					close(lost)
				}
			},
			OnNewLeader: func(id string) {
				if id != o.Identity {
					level.Info(o.Logger).Log("msg", "another replica leads; standing by", "leader", id)
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	le.Run(ctx)
	if led.Load() {
		<-runDone // le.Run cancelled run's context on its way out
	}
	select {
	case <-lost:
		return ErrLostLeadership
	default:
		return nil
	}
}
