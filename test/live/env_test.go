//go:build livewip

package live

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/kedastral/kedastral/test/testca"
)

// Fixed ports: the network namespace is the test's own.
const (
	etcdPort         = 2379
	etcdPeerPort     = 2380
	apiPort          = 6443
	adapterPort      = 6444 // KEDA's metrics API server, behind the aggregator
	adapterMetrics   = 8182
	operatorMetrics  = "127.0.0.1:8180"
	operatorProbe    = "127.0.0.1:8181"
	operatorGRPC     = "127.0.0.1:9666" // KEDA's metrics service (operator → adapter)
	kedaNamespace    = "keda"
	adapterService   = "keda-metrics-apiserver"
	externalMetricsV = "v1beta1.external.metrics.k8s.io"
)

// repoRoot is the repository's top directory.
var repoRoot = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}()

// modVersion is the version test/bins/<mod>/go.mod requires of its one
// direct dependency, as test/bins/build.sh reads it.
func modVersion(t testing.TB, mod string) string {
	b, err := os.ReadFile(filepath.Join(repoRoot, "test", "bins", mod, "go.mod"))
	if err != nil {
		t.Fatalf("read test/bins/%s/go.mod: %v", mod, err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "require" {
			return f[2]
		}
	}
	t.Fatalf("test/bins/%s/go.mod has no single-line require", mod)
	return ""
}

// binDirs are test/bins/build.sh's cache directories of the kube and keda
// targets.
func binDirs(t testing.TB) (kube, keda string) {
	root := os.Getenv("KEDASTRAL_BIN_CACHE")
	if root == "" {
		root = os.Getenv("KEDASTRAL_KUBE_BIN_CACHE")
	}
	if root == "" {
		home, _ := os.UserHomeDir()
		root = filepath.Join(home, ".cache", "kedastral")
	}
	kube = filepath.Join(root, "kube-"+modVersion(t, "apiserver")+"-etcd-"+modVersion(t, "etcd"))
	keda = filepath.Join(root, "keda-"+modVersion(t, "keda"))
	return kube, keda
}

// requireFiles fails the test naming every missing prerequisite and the
// command that provides it.
func requireFiles(t testing.TB, kubeDir, kedaDir string) {
	var missing []string
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager"} {
		if _, err := os.Stat(filepath.Join(kubeDir, b)); err != nil {
			missing = append(missing, fmt.Sprintf("%s (test/bins/build.sh kube)", filepath.Join(kubeDir, b)))
		}
	}
	for _, b := range []string{"keda", "keda-adapter", "crds/keda.sh_scaledobjects.yaml"} {
		if _, err := os.Stat(filepath.Join(kedaDir, b)); err != nil {
			missing = append(missing, fmt.Sprintf("%s (test/bins/build.sh keda)", filepath.Join(kedaDir, b)))
		}
	}
	for _, b := range []string{"prometheus", "promtool"} {
		if _, err := exec.LookPath(b); err != nil {
			missing = append(missing, b+" on PATH (apt-get install prometheus)")
		}
	}
	if len(missing) > 0 {
		t.Fatalf("missing prerequisites:\n  %s", strings.Join(missing, "\n  "))
	}
}

// proc is a component the harness started; its output goes to a log file
// in the test's directory.
type proc struct {
	name string
	cmd  *exec.Cmd
	path string
	log  *os.File
	done chan struct{}
	once sync.Once
}

func (e *env) start(t testing.TB, name string, environ []string, bin string, args ...string) *proc {
	t.Helper()
	path := filepath.Join(e.dir, name+".log")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), environ...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, path: path, log: f, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	return p
}

// stop ends the process: SIGTERM, then SIGKILL after 10 s.
func (p *proc) stop() {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		p.log.Close()
	})
}

// kill ends the process at once (SIGKILL), as a crash would.
func (p *proc) kill() {
	p.once.Do(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		p.log.Close()
	})
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// env is the cluster and everything around it.
type env struct {
	dir          string
	kubeDir      string
	kedaDir      string
	kubeconfig   string
	token        string
	ca           *testca.CA
	caFile       string
	cfg          *rest.Config
	kube         kubernetes.Interface
	dyn          dynamic.Interface
	auditLog     string // kube-apiserver's: updates of deployments/scale
	adapterAudit string // KEDA adapter's: the external metrics it served

	mu    sync.Mutex
	procs []*proc
}

// startEnv starts etcd, kube-apiserver, kube-controller-manager and KEDA,
// registers KEDA's metrics API server with the aggregator and waits until
// the external metrics API is available. Everything is stopped when the test
// ends; on failure the tail of every log is printed.
func startEnv(t *testing.T) *env {
	kubeDir, kedaDir := binDirs(t)
	requireFiles(t, kubeDir, kedaDir)
	e := &env{dir: t.TempDir(), kubeDir: kubeDir, kedaDir: kedaDir}
	t.Cleanup(func() {
		e.mu.Lock()
		procs := append([]*proc(nil), e.procs...)
		e.mu.Unlock()
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].stop()
		}
		if t.Failed() {
			for _, p := range procs {
				t.Logf("--- %s log (tail) ---\n%s", p.name, tail(p.path, 40))
			}
		}
	})
	e.ca = testca.New(t, "kedastral live CA")
	e.caFile = testca.Write(t, e.dir, "ca.crt", e.ca.PEM)

	// etcd.
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPeerPort)
	etcd := e.start(t, "etcd", nil, filepath.Join(kubeDir, "etcd"),
		"--name=default", "--data-dir="+filepath.Join(e.dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=default="+peerURL, "--unsafe-no-fsync", "--log-level=warn")
	e.waitHTTP(t, etcdURL+"/health", nil, "", time.Minute, etcd)

	// kube-apiserver, with the front proxy (aggregation layer), service
	// accounts and an audit log of the external metrics the HPA reads and
	// of the scale changes.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	saKey := testca.Write(t, e.dir, "sa.key", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	saPub := testca.Write(t, e.dir, "sa.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
	tok := make([]byte, 16)
	_, _ = rand.Read(tok)
	e.token = hex.EncodeToString(tok)
	tokens := testca.Write(t, e.dir, "tokens.csv", []byte(e.token+`,admin,admin,"system:masters"`+"\n"))
	proxyCA := testca.New(t, "front-proxy CA")
	proxyCAFile := testca.Write(t, e.dir, "front-proxy-ca.crt", proxyCA.PEM)
	pc, pk := issue(t, proxyCA, "front-proxy-client", nil, x509.ExtKeyUsageClientAuth)
	proxyCert := testca.Write(t, e.dir, "front-proxy-client.crt", pc)
	proxyKey := testca.Write(t, e.dir, "front-proxy-client.key", pk)
	auditPolicy := testca.Write(t, e.dir, "audit-policy.yaml", []byte(`apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Request
  verbs: [update, patch]
  resources: [{group: apps, resources: [deployments/scale]}]
- level: None
`))
	e.auditLog = filepath.Join(e.dir, "audit.log")
	apiURL := fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	api := e.start(t, "kube-apiserver", nil, filepath.Join(kubeDir, "kube-apiserver"),
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address="+advertiseAddr,
		fmt.Sprintf("--secure-port=%d", apiPort),
		"--cert-dir="+filepath.Join(e.dir, "apiserver-certs"),
		"--token-auth-file="+tokens,
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=10.0.0.0/24",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+saPub,
		"--service-account-signing-key-file="+saKey,
		"--disable-admission-plugins=ServiceAccount",
		"--requestheader-client-ca-file="+proxyCAFile,
		"--requestheader-allowed-names=front-proxy-client",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-username-headers=X-Remote-User",
		"--client-ca-file="+e.caFile,
		"--proxy-client-cert-file="+proxyCert,
		"--proxy-client-key-file="+proxyKey,
		"--audit-policy-file="+auditPolicy,
		"--audit-log-path="+e.auditLog,
		"--audit-log-mode=blocking",
	)
	e.waitHTTP(t, apiURL+"/readyz", insecureClient(), e.token, 2*time.Minute, api)
	e.cfg = &rest.Config{Host: apiURL, BearerToken: e.token, TLSClientConfig: rest.TLSClientConfig{Insecure: true}, QPS: 50, Burst: 100}
	if e.kube, err = kubernetes.NewForConfig(e.cfg); err != nil {
		t.Fatal(err)
	}
	if e.dyn, err = dynamic.NewForConfig(e.cfg); err != nil {
		t.Fatal(err)
	}
	e.kubeconfig = testca.Write(t, e.dir, "kubeconfig", fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: live
  cluster: {server: %q, insecure-skip-tls-verify: true}
users:
- name: admin
  user: {token: %q}
contexts:
- name: live
  context: {cluster: live, user: admin, namespace: default}
current-context: live
`, apiURL, e.token))

	// kube-controller-manager: only what scales a Deployment (no scheduler,
	// no kubelet: pods stay Pending; spec.replicas is what the HPA sets).
	e.start(t, "kube-controller-manager", []string{"TZ=UTC"}, filepath.Join(kubeDir, "kube-controller-manager"),
		"--kubeconfig="+e.kubeconfig,
		"--controllers=deployment-controller,replicaset-controller,horizontal-pod-autoscaler-controller,garbage-collector-controller",
		"--leader-elect=false",
		"--secure-port=0",
		"--horizontal-pod-autoscaler-sync-period=15s",
		"--v=2",
	)

	// KEDA: its CRDs, its namespace, one certificate for the operator's
	// metrics service and the adapter's serving and client side, the
	// APIService and an ExternalName Service "localhost" the aggregator
	// dials.
	crds, _ := filepath.Glob(filepath.Join(kedaDir, "crds", "*.yaml"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, f := range crds {
		e.applyFile(ctx, t, f)
	}
	e.namespace(t, kedaNamespace)
	certDir := filepath.Join(e.dir, "keda-certs")
	if err := os.MkdirAll(certDir, 0o755); err != nil {
		t.Fatal(err)
	}
	kc, kk := issue(t, e.ca, "keda", []string{"localhost", adapterService + "." + kedaNamespace + ".svc",
		"keda-operator." + kedaNamespace + ".svc", "keda-operator." + kedaNamespace + ".svc.cluster.local"},
		x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	testca.Write(t, certDir, "tls.crt", kc)
	testca.Write(t, certDir, "tls.key", kk)
	testca.Write(t, certDir, "ca.crt", e.ca.PEM)
	customCA := filepath.Join(e.dir, "keda-custom-ca")
	if err := os.MkdirAll(customCA, 0o755); err != nil {
		t.Fatal(err)
	}
	kedaEnv := []string{"KUBECONFIG=" + e.kubeconfig, "POD_NAMESPACE=" + kedaNamespace, "KEDA_CLUSTER_OBJECT_NAMESPACE=" + kedaNamespace,
		"WATCH_NAMESPACE=", "OPERATOR_NAME=keda-operator"}
	e.start(t, "keda-operator", kedaEnv, filepath.Join(kedaDir, "keda"),
		"--enable-cert-rotation=false", "--enable-webhook-patching=false", "--enable-apiservice-patching=false",
		"--cert-dir="+certDir, "--leader-elect=false",
		"--metrics-bind-address="+operatorMetrics, "--health-probe-bind-address="+operatorProbe,
		"--metrics-service-bind-address="+operatorGRPC,
		"--ca-dir="+customCA,
		"--zap-log-level=info", "--zap-encoder=console")
	adapterPolicy := testca.Write(t, e.dir, "adapter-audit-policy.yaml", []byte(`apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: RequestResponse
  resources: [{group: external.metrics.k8s.io}]
- level: None
`))
	e.adapterAudit = filepath.Join(e.dir, "adapter-audit.log")
	adapter := e.start(t, "keda-adapter", kedaEnv, filepath.Join(kedaDir, "keda-adapter"),
		fmt.Sprintf("--secure-port=%d", adapterPort), "--bind-address=127.0.0.1",
		"--cert-dir="+certDir,
		"--tls-cert-file="+filepath.Join(certDir, "tls.crt"), "--tls-private-key-file="+filepath.Join(certDir, "tls.key"),
		"--metrics-service-address="+operatorGRPC,
		fmt.Sprintf("--port=%d", adapterMetrics),
		"--lister-kubeconfig="+e.kubeconfig,
		"--authentication-kubeconfig="+e.kubeconfig, "--authorization-kubeconfig="+e.kubeconfig,
		"--audit-policy-file="+adapterPolicy, "--audit-log-path="+e.adapterAudit, "--audit-log-mode=blocking",
		"--v=1")
	e.applyYAML(ctx, t, fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: %s, namespace: %s}
spec:
  type: ExternalName
  externalName: localhost
  ports: [{name: https, port: %d}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: %s}
spec:
  group: external.metrics.k8s.io
  version: v1beta1
  service: {namespace: %s, name: %s, port: %d}
  caBundle: %s
  groupPriorityMinimum: 100
  versionPriority: 100
`, adapterService, kedaNamespace, adapterPort, externalMetricsV, kedaNamespace, adapterService, adapterPort,
		base64.StdEncoding.EncodeToString(e.ca.PEM)))
	apiSvcGVR := schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		o, err := e.dyn.Resource(apiSvcGVR).Get(ctx, externalMetricsV, metav1.GetOptions{})
		if err == nil && condition(o, "Available") == "True" {
			break
		}
		if time.Now().After(deadline) || adapter.exited() {
			msg := ""
			if o != nil {
				msg = fmt.Sprint(o.Object["status"])
			}
			t.Fatalf("APIService %s not available within 2m (adapter exited: %v): %v %s", externalMetricsV, adapter.exited(), err, msg)
		}
		time.Sleep(time.Second)
	}
	return e
}

// issue returns a certificate for 127.0.0.1 and the DNS names, signed by
// ca, and its key, PEM-encoded.
func issue(t testing.TB, ca *testca.CA, cn string, dns []string, usage ...x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: usage,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: dns,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func insecureClient() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
}

// waitHTTP polls url until it answers 200; it fails the test when p exits
// or limit passes first.
func (e *env) waitHTTP(t testing.TB, url string, client *http.Client, token string, limit time.Duration, p *proc) {
	t.Helper()
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	deadline := time.Now().Add(limit)
	last := ""
	for time.Now().Before(deadline) {
		if p.exited() {
			t.Fatalf("%s exited before %s answered:\n%s", p.name, url, tail(p.path, 30))
		}
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s not ready within %s: %s\n%s", url, limit, last, tail(p.path, 30))
}

func condition(o *unstructured.Unstructured, typ string) string {
	conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == typ {
			s, _ := m["status"].(string)
			return s
		}
	}
	return ""
}

// namespace creates a namespace.
func (e *env) namespace(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": name}}}
	gvr := schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	if _, err := e.dyn.Resource(gvr).Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", name, err)
	}
}

func (e *env) applyFile(ctx context.Context, t testing.TB, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	e.applyYAML(ctx, t, string(b))
}

// gvrs maps the kinds the tests create to their resources.
var gvrs = map[string]schema.GroupVersionResource{
	"CustomResourceDefinition":     {Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"},
	"APIService":                   {Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"},
	"Service":                      {Version: "v1", Resource: "services"},
	"Secret":                       {Version: "v1", Resource: "secrets"},
	"Deployment":                   {Group: "apps", Version: "v1", Resource: "deployments"},
	"ScaledObject":                 {Group: "keda.sh", Version: "v1alpha1", Resource: "scaledobjects"},
	"TriggerAuthentication":        {Group: "keda.sh", Version: "v1alpha1", Resource: "triggerauthentications"},
	"ForecastPolicy":               {Group: "kedastral.io", Version: "v1alpha1", Resource: "forecastpolicies"},
	"HorizontalPodAutoscaler":      {Group: "autoscaling", Version: "v2", Resource: "horizontalpodautoscalers"},
	"ClusterTriggerAuthentication": {Group: "keda.sh", Version: "v1alpha1", Resource: "clustertriggerauthentications"},
}

// applyYAML creates the objects of a YAML stream (or updates them), and
// waits for CRDs to be established.
func (e *env) applyYAML(ctx context.Context, t testing.TB, y string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, doc := range strings.Split(y, "\n---\n") {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatalf("yaml: %v\n%s", err, doc)
		}
		if len(m) == 0 {
			continue
		}
		o := &unstructured.Unstructured{Object: m}
		gvr, ok := gvrs[o.GetKind()]
		if !ok {
			t.Fatalf("no resource known for kind %s", o.GetKind())
		}
		var r dynamic.ResourceInterface = e.dyn.Resource(gvr)
		if o.GetNamespace() != "" {
			r = e.dyn.Resource(gvr).Namespace(o.GetNamespace())
		}
		got, err := r.Create(ctx, o, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			cur, gerr := r.Get(ctx, o.GetName(), metav1.GetOptions{})
			if gerr != nil {
				t.Fatal(gerr)
			}
			o.SetResourceVersion(cur.GetResourceVersion())
			got, err = r.Update(ctx, o, metav1.UpdateOptions{})
		}
		if err != nil {
			t.Fatalf("apply %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
		if o.GetKind() == "CustomResourceDefinition" {
			for condition(got, "Established") != "True" {
				if ctx.Err() != nil {
					t.Fatalf("CRD %s not established", o.GetName())
				}
				time.Sleep(100 * time.Millisecond)
				if got, err = r.Get(ctx, o.GetName(), metav1.GetOptions{}); err != nil {
					t.Fatal(err)
				}
			}
		}
		out = append(out, got)
	}
	return out
}
