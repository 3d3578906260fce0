// Package clustertest runs a real control plane for tests: etcd and
// kube-apiserver (built from k8s.io/kubernetes by hack/k8s/build.sh, once
// per machine, cached outside the repository) on loopback, with
// certificates made here by crypto/x509, the Node authorizer and the
// NodeRestriction admission plugin on, as in every kubeadm cluster.
//
// Everything lives in one temporary folder; Stop (registered as the test's
// cleanup) kills the two processes by PID and removes it.
package clustertest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Binaries returns the folder holding kube-apiserver, etcd and kubectl,
// building them on first use (minutes, once per machine). It skips t only
// when a build is impossible here (no Go toolchain, no module download).
func Binaries(t testing.TB) string {
	t.Helper()
	_, self, _, _ := goruntime.Caller(0)
	script := filepath.Join(filepath.Dir(self), "..", "..", "..", "hack", "k8s", "build.sh")
	cmd := exec.Command(script, "kube-apiserver", "etcd", "kubectl")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		msg := errb.String()
		if _, lerr := exec.LookPath("go"); lerr != nil && !fileExists("/usr/local/go/bin/go") {
			t.Skipf("cluster test skipped: no Go toolchain to build kube-apiserver (%s): %v", script, err)
		}
		if strings.Contains(msg, "dial tcp") || strings.Contains(msg, "proxy.golang.org") {
			t.Skipf("cluster test skipped: modules for kube-apiserver cannot be downloaded: %s", tail(msg, 600))
		}
		t.Fatalf("%s: %v\n%s", script, err, tail(msg, 4000))
	}
	return strings.TrimSpace(out.String())
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// Cluster is a running etcd + kube-apiserver.
type Cluster struct {
	t         testing.TB
	Bin, Dir  string
	URL       string // https://127.0.0.1:<port>
	port      int
	etcdURL   string
	ca        *x509.Certificate
	caKey     crypto.Signer
	CAFile    string
	AdminConf string
	Admin     kubernetes.Interface

	mu        sync.Mutex
	etcd, api *proc
	apiArgs   []string
}

type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// Start runs a control plane for t and stops it when t ends.
func Start(t testing.TB) *Cluster {
	t.Helper()
	bin := Binaries(t)
	dir, err := os.MkdirTemp("", "mkl-cluster-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{t: t, Bin: bin, Dir: dir}
	t.Cleanup(c.Stop)
	if err := c.makePKI(); err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 3)
	c.port = ports[2]
	c.URL = "https://127.0.0.1:" + strconv.Itoa(c.port)
	c.etcdURL = "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peer := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	c.etcd = c.spawn("etcd", filepath.Join(bin, "etcd"), "--name", "default", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", c.etcdURL, "--advertise-client-urls", c.etcdURL,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "default="+peer,
		"--log-level", "warn")
	p := func(f string) string { return filepath.Join(dir, "pki", f) }
	c.apiArgs = []string{
		"--etcd-servers", c.etcdURL,
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", strconv.Itoa(c.port),
		// One API server advertising loopback: no Endpoints reconciling.
		"--endpoint-reconciler-type", "none",
		"--tls-cert-file", p("apiserver.crt"), "--tls-private-key-file", p("apiserver.key"),
		"--client-ca-file", p("ca.crt"),
		"--kubelet-client-certificate", p("apiserver-kubelet-client.crt"), "--kubelet-client-key", p("apiserver-kubelet-client.key"),
		"--kubelet-preferred-address-types", "InternalIP,Hostname",
		"--service-account-key-file", p("sa.pub"), "--service-account-signing-key-file", p("sa.key"),
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range", "10.96.0.0/12",
		"--authorization-mode", "Node,RBAC", "--enable-admission-plugins", "NodeRestriction",
		"--allow-privileged=true",
	}
	c.AdminConf = filepath.Join(dir, "admin.conf")
	if err := c.writeKubeconfig(c.AdminConf, "kubernetes-admin", []string{"system:masters"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", c.AdminConf)
	if err != nil {
		t.Fatal(err)
	}
	if c.Admin, err = kubernetes.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	c.StartAPIServer()
	return c
}

func freePorts(t testing.TB, n int) []int {
	var ls []net.Listener
	var out []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return out
}

func (c *Cluster) spawn(name, bin string, args ...string) *proc {
	c.t.Helper()
	logPath := filepath.Join(c.Dir, name+".log")
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	defer lf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	// Dies with the test binary even if cleanup never runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() { cmd.Wait(); close(p.done) }()
	return p
}

// StartAPIServer (re)starts kube-apiserver and waits until /readyz says ok.
func (c *Cluster) StartAPIServer() {
	c.t.Helper()
	c.mu.Lock()
	c.api = c.spawn("kube-apiserver", filepath.Join(c.Bin, "kube-apiserver"), c.apiArgs...)
	api := c.api
	c.mu.Unlock()
	deadline := time.Now().Add(90 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		body, err := c.Admin.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		cancel()
		if err == nil && string(body) == "ok" {
			return
		}
		select {
		case <-api.done:
			c.t.Fatalf("kube-apiserver exited:\n%s", c.Logs("kube-apiserver"))
		default:
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("kube-apiserver not ready after 90s (last: %v %s):\n%s", err, body, tail(c.Logs("kube-apiserver"), 4000))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// StopAPIServer ends kube-apiserver (SIGTERM, by PID) and waits for it;
// etcd keeps running.
func (c *Cluster) StopAPIServer() {
	c.mu.Lock()
	api := c.api
	c.api = nil
	c.mu.Unlock()
	stopProc(api)
}

func stopProc(p *proc) {
	if p == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// Logs returns a component's log ("etcd" or "kube-apiserver").
func (c *Cluster) Logs(name string) string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, name+".log"))
	return string(b)
}

// Stop ends both processes and removes the folder.
func (c *Cluster) Stop() {
	if c.t.Failed() {
		c.t.Logf("--- kube-apiserver log (tail) ---\n%s", tail(c.Logs("kube-apiserver"), 8000))
	}
	c.StopAPIServer()
	c.mu.Lock()
	e := c.etcd
	c.etcd = nil
	c.mu.Unlock()
	stopProc(e)
	os.RemoveAll(c.Dir)
}

// KubectlCmd is the real kubectl as cluster admin, not started (for stdin
// or a command that runs until it is stopped, like port-forward).
func (c *Cluster) KubectlCmd(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, filepath.Join(c.Bin, "kubectl"), append([]string{"--kubeconfig", c.AdminConf}, args...)...)
}

// Kubectl runs the real kubectl as cluster admin.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	cmd := c.KubectlCmd(ctx, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

// NodeKubeconfig writes a kubeconfig with the node's own client
// certificate (CN system:node:<name>, O system:nodes), as kubeadm gives a
// kubelet, and returns its path.
func (c *Cluster) NodeKubeconfig(node string) string {
	c.t.Helper()
	path := filepath.Join(c.Dir, "kubelet-"+node+".conf")
	if err := c.writeKubeconfig(path, "system:node:"+node, []string{"system:nodes"}); err != nil {
		c.t.Fatal(err)
	}
	return path
}

// ---- PKI ----

func (c *Cluster) makePKI() error {
	pki := filepath.Join(c.Dir, "pki")
	if err := os.MkdirAll(pki, 0o700); err != nil {
		return err
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubernetes"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, caKey.Public(), caKey)
	if err != nil {
		return err
	}
	c.ca, _ = x509.ParseCertificate(der)
	c.caKey = caKey
	c.CAFile = filepath.Join(pki, "ca.crt")
	if err := writePEM(c.CAFile, "CERTIFICATE", der); err != nil {
		return err
	}
	if err := writeKey(filepath.Join(pki, "ca.key"), caKey); err != nil {
		return err
	}
	if err := c.issue(filepath.Join(pki, "apiserver"), "kube-apiserver", nil, true,
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
		[]net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.96.0.1")}); err != nil {
		return err
	}
	if err := c.issue(filepath.Join(pki, "apiserver-kubelet-client"), "kube-apiserver-kubelet-client", []string{"system:masters"}, false, nil, nil); err != nil {
		return err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	if err := writeKey(filepath.Join(pki, "sa.key"), saKey); err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(saKey.Public())
	if err != nil {
		return err
	}
	return writePEM(filepath.Join(pki, "sa.pub"), "PUBLIC KEY", pub)
}

var serial int64 = 1

// issue writes base.crt and base.key: a certificate signed by the CA.
func (c *Cluster) issue(base, cn string, orgs []string, server bool, dns []string, ips []net.IP) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn, Organization: orgs},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		DNSNames:    dns, IPAddresses: ips,
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.ca, key.Public(), c.caKey)
	if err != nil {
		return err
	}
	if err := writePEM(base+".crt", "CERTIFICATE", der); err != nil {
		return err
	}
	return writeKey(base+".key", key)
}

func (c *Cluster) writeKubeconfig(path, cn string, orgs []string) error {
	base := strings.TrimSuffix(path, filepath.Ext(path))
	if err := c.issue(base, cn, orgs, false, nil, nil); err != nil {
		return err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = &clientcmdapi.Cluster{Server: c.URL, CertificateAuthority: c.CAFile}
	cfg.AuthInfos["user"] = &clientcmdapi.AuthInfo{ClientCertificate: base + ".crt", ClientKey: base + ".key"}
	cfg.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "user"}
	cfg.CurrentContext = "test"
	return clientcmd.WriteToFile(*cfg, path)
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

func writeKey(path string, k *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return err
	}
	return writePEM(path, "EC PRIVATE KEY", der)
}
