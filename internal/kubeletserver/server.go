// Package kubeletserver is the kubelet's API on --port (10250) in cluster
// mode: what the API server proxies to a node (kubectl logs, the node proxy
// to /pods, /metrics, /healthz; kubectl exec, attach and port-forward) over TLS, with the kubelet's
// authentication (client certificates against --client-ca-file, bearer
// tokens by TokenReview) and authorization (SubjectAccessReview on
// nodes/<name> with the kubelet's subresources), or AlwaysAllow.
//
// kubelet: pkg/kubelet/server/server.go, pkg/kubelet/server/auth.go.
package kubeletserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/minikubelet/minikubelet/internal/api"
)

// Options configure the server.
type Options struct {
	Address  string // "" = all addresses
	Port     int
	NodeName string
	// NodeIPs and hostname go into a self-signed certificate's SANs.
	NodeIPs  []string
	Hostname string
	// CertFile/KeyFile serve TLS; empty: a self-signed pair under
	// <RootDir>/pki (kubelet.crt, kubelet.key), made once and kept.
	CertFile, KeyFile, RootDir string
	// ClientCAFile verifies client certificates ("" = none accepted).
	ClientCAFile string
	// WebhookAuthn accepts bearer tokens by TokenReview; WebhookAuthz asks
	// a SubjectAccessReview for every request (else AlwaysAllow).
	WebhookAuthn, WebhookAuthz bool
	Client                     kubernetes.Interface
	// Source is the daemon's pod store; Socket its local API (logs).
	Source api.Source
	Socket string
	LogDir string
	// Runtime serves /exec, /attach and /portForward (nil: 501).
	Runtime Runtime
	Metrics http.Handler
	Log     *slog.Logger
}

// Server is the kubelet API.
type Server struct {
	o   Options
	log *slog.Logger
	tc  *tls.Config
}

// New returns a Server; Run serves it.
func New(o Options) *Server {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Server{o: o, log: o.Log}
}

// Init reads or makes the certificates; an error names the file.
func (s *Server) Init() error {
	tc, err := s.tlsConfig()
	s.tc = tc
	return err
}

// Run listens and serves until ctx ends (after Init). A port that cannot be
// bound is retried every 5 s: the kubelet API is never a reason to stop the
// pods.
func (s *Server) Run(ctx context.Context) error {
	tc := s.tc
	if tc == nil {
		return errors.New("kubelet API: Init was not called")
	}
	addr := net.JoinHostPort(s.o.Address, strconv.Itoa(s.o.Port))
	hs := &http.Server{Handler: s.Handler(), TLSConfig: tc, ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	go func() { <-ctx.Done(); hs.Close() }()
	for ctx.Err() == nil {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			s.log.Error("kubelet API cannot listen; retrying in 5s", "address", addr, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Second):
			}
			continue
		}
		s.log.Info("kubelet API listening", "address", l.Addr().String())
		if err := hs.Serve(tls.NewListener(l, tc)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("kubelet API", "err", err)
		}
	}
	return nil
}

func (s *Server) tlsConfig() (*tls.Config, error) {
	certFile, keyFile := s.o.CertFile, s.o.KeyFile
	if certFile == "" || keyFile == "" {
		// kubelet: pkg/kubelet/kubelet_server.go / cmd/kubelet/app/server.go
		// InitializeTLS: a self-signed pair in the cert dir when none is given.
		dir := filepath.Join(s.o.RootDir, "pki")
		certFile, keyFile = filepath.Join(dir, "kubelet.crt"), filepath.Join(dir, "kubelet.key")
		if err := s.ensureSelfSigned(certFile, keyFile); err != nil {
			return nil, err
		}
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("kubelet API certificate %s / %s: %w", certFile, keyFile, err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
		ClientAuth: tls.RequestClientCert, NextProtos: []string{"http/1.1"}}
	if s.o.ClientCAFile != "" {
		b, err := os.ReadFile(s.o.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("--client-ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("--client-ca-file %s: no PEM certificate in it", s.o.ClientCAFile)
		}
		tc.ClientCAs = pool
		// A certificate, when given, must verify; tokens stay possible.
		tc.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return tc, nil
}

func (s *Server) ensureSelfSigned(certFile, keyFile string) error {
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	host := s.o.Hostname
	if host == "" {
		host = s.o.NodeName
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		// kubelet: certutil.GenerateSelfSignedCertKey names it <host>@<unix time>.
		Subject:   pkix.Name{CommonName: fmt.Sprintf("%s@%d", host, time.Now().Unix())},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
		DNSNames: []string{host, "localhost"},
	}
	for _, ip := range append([]string{"127.0.0.1"}, s.o.NodeIPs...) {
		if p := net.ParseIP(ip); p != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, p)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// user is an authenticated caller.
type user struct {
	name   string
	uid    string
	groups []string
	extra  map[string]authzv1.ExtraValue
}

// authenticate: a verified client certificate (CN = user, O = groups),
// else a bearer token by TokenReview (kubelet: pkg/kubelet/server/auth.go,
// cmd/kubelet/app/auth.go BuildAuthn).
func (s *Server) authenticate(r *http.Request) (*user, error) {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.PeerCertificates) > 0 {
		c := r.TLS.PeerCertificates[0]
		return &user{name: c.Subject.CommonName, groups: c.Subject.Organization}, nil
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" || !s.o.WebhookAuthn || s.o.Client == nil {
		return nil, errors.New("no verified client certificate or accepted bearer token")
	}
	tr, err := s.o.Client.AuthenticationV1().TokenReviews().Create(r.Context(),
		&authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: tok}}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("token review: %w", err)
	}
	if !tr.Status.Authenticated {
		return nil, fmt.Errorf("token rejected: %s", tr.Status.Error)
	}
	u := &user{name: tr.Status.User.Username, uid: tr.Status.User.UID, groups: tr.Status.User.Groups}
	if len(tr.Status.User.Extra) > 0 {
		u.extra = map[string]authzv1.ExtraValue{}
		for k, v := range tr.Status.User.Extra {
			u.extra[k] = authzv1.ExtraValue(v)
		}
	}
	return u, nil
}

// subresource maps a path to the nodes/<sub> the caller needs (kubelet:
// pkg/kubelet/server/auth.go GetRequestAttributes).
func subresource(path string) string {
	switch {
	case path == "/stats" || strings.HasPrefix(path, "/stats/"):
		return "stats"
	case path == "/metrics" || strings.HasPrefix(path, "/metrics/"):
		return "metrics"
	case path == "/logs" || strings.HasPrefix(path, "/logs/"):
		return "log"
	case path == "/spec" || strings.HasPrefix(path, "/spec/"):
		return "spec"
	case path == "/pods" || strings.HasPrefix(path, "/pods/"):
		return "pods"
	case path == "/healthz" || strings.HasPrefix(path, "/healthz/"):
		return "healthz"
	}
	return "proxy"
}

// verb is the API verb of an HTTP method (kubelet: auth.go, as the API
// server's request info resolver maps them).
func verb(method string) string {
	switch method {
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	}
	return "get"
}

func (s *Server) authorize(r *http.Request, u *user) (bool, string, error) {
	if !s.o.WebhookAuthz {
		return true, "", nil
	}
	sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
		User: u.name, UID: u.uid, Groups: u.groups, Extra: u.extra,
		ResourceAttributes: &authzv1.ResourceAttributes{Verb: verb(r.Method), Resource: "nodes",
			Subresource: subresource(r.URL.Path), Name: s.o.NodeName, Version: "v1"},
	}}
	res, err := s.o.Client.AuthorizationV1().SubjectAccessReviews().Create(r.Context(), sar, metav1.CreateOptions{})
	if err != nil {
		return false, "", err
	}
	return res.Status.Allowed, res.Status.Reason, nil
}

// Handler is the authenticated, authorised API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	mux.HandleFunc("/pods", s.pods)
	mux.HandleFunc("/pods/", s.pods)
	mux.HandleFunc("/containerLogs/", s.containerLogs)
	mux.HandleFunc("/stats/summary", s.summary)
	mux.HandleFunc("/exec/", s.exec)
	mux.HandleFunc("/attach/", s.attach)
	mux.HandleFunc("/portForward/", s.portForward)
	if s.o.Metrics != nil {
		mux.Handle("/metrics", s.o.Metrics)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := s.authenticate(r)
		if err != nil {
			s.log.Debug("kubelet API: unauthenticated", "path", r.URL.Path, "err", err)
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		ok, reason, err := s.authorize(r, u)
		if err != nil {
			http.Error(w, fmt.Sprintf("Authorization error (user=%s, verb=%s, resource=nodes, subresource=%s): %v",
				u.name, verb(r.Method), subresource(r.URL.Path), err), http.StatusInternalServerError)
			return
		}
		if !ok {
			msg := fmt.Sprintf("Forbidden (user=%s, verb=%s, resource=nodes, subresource=%s)", u.name, verb(r.Method), subresource(r.URL.Path))
			if reason != "" {
				msg += ": " + reason
			}
			http.Error(w, msg, http.StatusForbidden)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// pods is the kubelet's /pods: a v1 PodList of the node's pods.
func (s *Server) pods(w http.ResponseWriter, r *http.Request) {
	list := v1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}, Items: s.o.Source.Pods()}
	for i := range list.Items {
		list.Items[i].TypeMeta = metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"}
	}
	writeJSON(w, &list)
}
