package kube_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"

	"github.com/kedastral/kedastral/promapi/promtest"
	"github.com/kedastral/kedastral/test/prereq"
)

// repoRoot is the repository's top directory.
var repoRoot = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}()

// binDir is where test/bins/build.sh puts kube-apiserver and etcd:
// $KEDASTRAL_KUBE_BIN, or the script's cache directory for the versions in
// its go.mod files.
func binDir() string {
	if d := os.Getenv("KEDASTRAL_KUBE_BIN"); d != "" {
		return d
	}
	version := func(mod string) string {
		b, err := os.ReadFile(filepath.Join(repoRoot, "test", "bins", mod, "go.mod"))
		if err != nil {
			return "unknown"
		}
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) == 3 && f[0] == "require" {
				return f[2]
			}
		}
		return "unknown"
	}
	root := os.Getenv("KEDASTRAL_BIN_CACHE")
	if root == "" {
		root = os.Getenv("KEDASTRAL_KUBE_BIN_CACHE")
	}
	if root == "" {
		home, _ := os.UserHomeDir()
		root = filepath.Join(home, ".cache", "kedastral")
	}
	return filepath.Join(root, "kube-"+version("apiserver")+"-etcd-"+version("etcd"))
}

// cluster is an etcd and a kube-apiserver on loopback, shared by the tests
// of the package.
type cluster struct {
	dir        string
	url        string // https://127.0.0.1:port
	token      string
	kubeconfig string
	cfg        *rest.Config
	dyn        dynamic.Interface
	mapper     *restmapper.DeferredDiscoveryRESTMapper
	procs      []*proc
}

type proc struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
}

var (
	shared     *cluster
	sharedErr  error
	sharedOnce sync.Once
	sharedDir  string
)

// getCluster returns the shared cluster, starting it on first use. Without
// the binaries the test fails.
func getCluster(t *testing.T) *cluster {
	t.Helper()
	dir := binDir()
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			prereq.Missing(t, fmt.Sprintf("%s is not in %s (test/bins/build.sh kube builds it, about 7 minutes of CPU once; or set KEDASTRAL_KUBE_BIN)", b, dir))
		}
	}
	sharedOnce.Do(func() {
		shared, sharedErr = startCluster(dir, sharedDir)
	})
	if sharedErr != nil {
		t.Fatalf("starting the API server: %v", sharedErr)
	}
	return shared
}

// freePort picks below the ephemeral range (promtest.FreePort), so that
// etcd's and the API server's ports are not taken by another process's bind.
func freePort() (int, error) { return promtest.FreePort() }

func startProc(name, logPath string, bin string, args ...string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: f, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.log.Close()
}

func logTail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// startCluster starts etcd and kube-apiserver in dir, trying new ports when
// another process took one between choosing and binding it.
func startCluster(bin, dir string) (*cluster, error) {
	var err error
	for attempt := range 3 {
		var c *cluster
		c, err = tryStart(bin, filepath.Join(dir, "try"+strconv.Itoa(attempt)))
		if err == nil {
			return c, nil
		}
	}
	return nil, err
}

func tryStart(bin, dir string) (c *cluster, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	c = &cluster{dir: dir}
	defer func() {
		if err != nil {
			c.stop()
		}
	}()
	clientPort, err := freePort()
	if err != nil {
		return nil, err
	}
	peerPort, err := freePort()
	if err != nil {
		return nil, err
	}
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	etcdLog := filepath.Join(dir, "etcd.log")
	etcd, err := startProc("etcd", etcdLog, filepath.Join(bin, "etcd"),
		"--name=default", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=default="+peerURL, "--unsafe-no-fsync", "--log-level=warn")
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, etcd)
	if err := waitHTTP(etcdURL+"/health", nil, "", 30*time.Second, etcd); err != nil {
		return nil, fmt.Errorf("etcd: %w\n%s", err, logTail(etcdLog, 20))
	}

	// The service-account signing key, and a static token of a member of
	// system:masters for the tests' own client.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	keyFile, pubFile := filepath.Join(dir, "sa.key"), filepath.Join(dir, "sa.pub")
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		return nil, err
	}
	tok := make([]byte, 16)
	_, _ = rand.Read(tok)
	c.token = hex.EncodeToString(tok)
	tokenFile := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokenFile, []byte(c.token+`,admin,admin,"system:masters"`+"\n"), 0o600); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	c.url = fmt.Sprintf("https://127.0.0.1:%d", port)
	apiLog := filepath.Join(dir, "kube-apiserver.log")
	api, err := startProc("kube-apiserver", apiLog, filepath.Join(bin, "kube-apiserver"),
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(port),
		"--cert-dir="+filepath.Join(dir, "certs"), // a self-signed serving certificate
		"--token-auth-file="+tokenFile,
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=10.0.0.0/24",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+pubFile,
		"--service-account-signing-key-file="+keyFile,
		// Pods are never run here; the plugin would want their service
		// accounts to exist first.
		"--disable-admission-plugins=ServiceAccount",
		"--allow-privileged=true",
	)
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, api)
	if err := waitHTTP(c.url+"/readyz", insecureClient(), c.token, 90*time.Second, api); err != nil {
		return nil, fmt.Errorf("kube-apiserver: %w\n%s", err, logTail(apiLog, 30))
	}
	c.cfg = &rest.Config{Host: c.url, BearerToken: c.token, TLSClientConfig: rest.TLSClientConfig{Insecure: true}, QPS: 50, Burst: 100}
	if c.dyn, err = dynamic.NewForConfig(c.cfg); err != nil {
		return nil, err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(c.cfg)
	if err != nil {
		return nil, err
	}
	c.mapper = restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	c.kubeconfig = filepath.Join(dir, "kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: %q, insecure-skip-tls-verify: true}
users:
- name: admin
  user: {token: %q}
contexts:
- name: test
  context: {cluster: test, user: admin, namespace: default}
current-context: test
`, c.url, c.token)
	if err := os.WriteFile(c.kubeconfig, []byte(kc), 0o600); err != nil {
		return nil, err
	}
	if err := c.applyCRDs(); err != nil {
		return nil, err
	}
	return c, nil
}

func insecureClient() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
}

// waitHTTP polls url until it answers 200, p exits or limit passes.
func waitHTTP(url string, client *http.Client, token string, limit time.Duration, p *proc) error {
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	deadline := time.Now().Add(limit)
	last := ""
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited", p.name)
		default:
		}
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready within %s: %s", url, limit, last)
}

func (c *cluster) stop() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		c.procs[i].stop()
	}
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// applyCRDs creates the CRDs of deploy/crds, and KEDA's ScaledObject CRD
// from the module cache when it is there (for the ScaledObject examples),
// and waits until they are served.
func (c *cluster) applyCRDs() error {
	files, _ := filepath.Glob(filepath.Join(repoRoot, "deploy", "crds", "kedastral.io_*.yaml"))
	if len(files) != 2 {
		return fmt.Errorf("want 2 CRD files in deploy/crds, found %v", files)
	}
	files = append(files, kedaCRDs()...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var names []string
	for _, f := range files {
		objs, err := readObjects(f)
		if err != nil {
			return err
		}
		for _, o := range objs {
			if _, err := c.dyn.Resource(crdGVR).Create(ctx, o, metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("create CRD from %s: %w", f, err)
			}
			names = append(names, o.GetName())
		}
	}
	for _, n := range names {
		for {
			o, err := c.dyn.Resource(crdGVR).Get(ctx, n, metav1.GetOptions{})
			if err == nil && established(o) {
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("CRD %s not established within a minute", n)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

func established(o *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

// kedaCRDs are KEDA's ScaledObject and TriggerAuthentication CRDs in the
// Go module cache (make setup downloads github.com/kedacore/keda/v2), or nil.
func kedaCRDs() []string {
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		return nil
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "github.com", "kedacore", "keda", "v2@v2.21.0", "config", "crd", "bases")
	var files []string
	for _, f := range []string{"keda.sh_scaledobjects.yaml", "keda.sh_triggerauthentications.yaml"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return nil
		}
		files = append(files, filepath.Join(dir, f))
	}
	return files
}

// readObjects reads the YAML documents of a file as objects.
func readObjects(path string) ([]*unstructured.Unstructured, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseObjects(b, path)
}

func parseObjects(b []byte, name string) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for i, doc := range splitYAML(b) {
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, i+1, err)
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
	return out, nil
}

func splitYAML(b []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		l := sc.Text()
		if strings.TrimRight(l, " ") == "---" || strings.HasPrefix(l, "--- ") {
			docs = append(docs, append([]byte(nil), cur.Bytes()...))
			cur.Reset()
			continue
		}
		cur.WriteString(l)
		cur.WriteByte('\n')
	}
	return append(docs, cur.Bytes())
}

// resource returns the client of o's resource in o's namespace.
func (c *cluster) resource(o *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gvk := o.GroupVersionKind()
	m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		c.mapper.Reset()
		if m, err = c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
			return nil, fmt.Errorf("%s: %w", gvk, err)
		}
	}
	if m.Scope.Name() == "namespace" {
		return c.dyn.Resource(m.Resource).Namespace(o.GetNamespace()), nil
	}
	return c.dyn.Resource(m.Resource), nil
}

var nsGVR = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}

// namespace creates a namespace for a test and deletes it at its end.
func (c *cluster) namespace(t *testing.T, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": name}}}
	if _, err := c.dyn.Resource(nsGVR).Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	return name
}

// apply creates o, or updates it when it exists.
func (c *cluster) apply(ctx context.Context, o *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	r, err := c.resource(o)
	if err != nil {
		return nil, err
	}
	out, err := r.Create(ctx, o, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		cur, gerr := r.Get(ctx, o.GetName(), metav1.GetOptions{})
		if gerr != nil {
			return nil, gerr
		}
		o = o.DeepCopy()
		o.SetResourceVersion(cur.GetResourceVersion())
		return r.Update(ctx, o, metav1.UpdateOptions{})
	}
	return out, err
}
