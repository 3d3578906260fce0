package images

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"

	"github.com/minikubelet/minikubelet/runtime/images/imagebuild"
)

// testRegistry is go-containerregistry's registry on 127.0.0.1 behind a
// small wrapper that adds auth (basic, or bearer tokens from /token),
// counts requests, corrupts chosen blobs and can hold manifest requests.
type testRegistry struct {
	host     string // the wrapped server, what pulls use
	pushHost string // the bare registry, for test setup

	auth       string // "", "basic", "bearer"
	user, pass string

	mu           sync.Mutex
	manifestGets int
	tokenGets    int
	corrupt      map[string]bool // blob digests served damaged
	gate         chan struct{}   // when set, manifest GETs wait for it to close
}

const testToken = "tok-3f9a"

func newTestRegistry(t *testing.T, auth string) *testRegistry {
	t.Helper()
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	push := httptest.NewServer(inner)
	t.Cleanup(push.Close)
	tr := &testRegistry{auth: auth, user: "node", pass: "s3cret", corrupt: map[string]bool{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { tr.serve(w, r, inner) }))
	t.Cleanup(srv.Close)
	tr.host = strings.TrimPrefix(srv.URL, "http://")
	tr.pushHost = strings.TrimPrefix(push.URL, "http://")
	return tr
}

func deny(w http.ResponseWriter, challenge, msg string) {
	w.Header().Set("WWW-Authenticate", challenge)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	fmt.Fprintf(w, `{"errors":[{"code":"UNAUTHORIZED","message":%q}]}`, msg)
}

func (tr *testRegistry) serve(w http.ResponseWriter, r *http.Request, inner http.Handler) {
	switch tr.auth {
	case "basic":
		if u, p, ok := r.BasicAuth(); !ok || u != tr.user || p != tr.pass {
			deny(w, `Basic realm="test registry"`, "authentication required by the test registry")
			return
		}
	case "bearer":
		if r.URL.Path == "/token" {
			tr.mu.Lock()
			tr.tokenGets++
			tr.mu.Unlock()
			if u, p, ok := r.BasicAuth(); !ok || u != tr.user || p != tr.pass {
				w.WriteHeader(http.StatusUnauthorized)
				fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials for the token service"}]}`)
				return
			}
			json.NewEncoder(w).Encode(map[string]string{"token": testToken})
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+testToken {
			deny(w, fmt.Sprintf(`Bearer realm="http://%s/token",service="test-registry"`, tr.host), "a bearer token is required")
			return
		}
	}
	if strings.Contains(r.URL.Path, "/manifests/") && r.Method == http.MethodGet {
		tr.mu.Lock()
		tr.manifestGets++
		gate := tr.gate
		tr.mu.Unlock()
		if gate != nil {
			<-gate
		}
	}
	if i := strings.Index(r.URL.Path, "/blobs/"); i >= 0 && r.Method == http.MethodGet {
		tr.mu.Lock()
		bad := tr.corrupt[r.URL.Path[i+len("/blobs/"):]]
		tr.mu.Unlock()
		if bad {
			rec := httptest.NewRecorder()
			inner.ServeHTTP(rec, r)
			body := rec.Body.Bytes()
			body[len(body)/2] ^= 0xff
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(body)
			return
		}
	}
	inner.ServeHTTP(w, r)
}

func (tr *testRegistry) counts() (manifests, tokens int) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.manifestGets, tr.tokenGets
}

// push uploads img as repo:tag through the unauthenticated side.
func (tr *testRegistry) push(t *testing.T, repoTag string, img v1.Image) v1.Hash {
	t.Helper()
	ref, err := name.ParseReference(tr.pushHost + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return d
}

func smallImage(t *testing.T, cmd string) v1.Image {
	return imageOf(t, imagebuild.Config{Cmd: []string{cmd}}, layerOf(t, dir("etc/"), file("etc/which", cmd)), layerOf(t, file("data", strings.Repeat(cmd, 1000))))
}

// noCreds keeps tests away from the host's ~/.docker/config.json.
var noCreds = []string{}

func TestPullPolicyRules(t *testing.T) {
	reg := newTestRegistry(t, "")
	digest := reg.push(t, "team/app:1", smallImage(t, "one"))
	now := time.Unix(1_800_000_000, 0)
	s := openStore(t, Options{CredentialFiles: noCreds, Clock: func() time.Time { return now }})
	ctx := context.Background()
	ref := reg.host + "/team/app:1"

	var pe *PullError
	if _, err := s.EnsureImage(ctx, ref, corev1.PullNever, nil); !errors.As(err, &pe) || pe.Reason != ReasonErrImageNeverPull {
		t.Fatalf("Never, absent: %v", err)
	}
	var progress []Progress
	rec, err := s.EnsureImage(ctx, ref, corev1.PullIfNotPresent, func(p Progress) { progress = append(progress, p) })
	if err != nil {
		t.Fatal(err)
	}
	if s.Fetches() != 1 || rec.ManifestDigest != digest.String() || rec.RepoDigests[0] != reg.host+"/team/app@"+digest.String() {
		t.Fatalf("first pull: fetches %d, record %+v", s.Fetches(), rec)
	}
	if len(progress) == 0 || progress[len(progress)-1].LayersDone != 2 || progress[len(progress)-1].Done < progress[len(progress)-1].Total {
		t.Fatalf("progress reports %+v", progress)
	}
	if _, err := s.EnsureImage(ctx, ref, corev1.PullIfNotPresent, nil); err != nil || s.Fetches() != 1 {
		t.Fatalf("IfNotPresent with the image stored fetched again (%d): %v", s.Fetches(), err)
	}
	if _, err := s.EnsureImage(ctx, ref, corev1.PullNever, nil); err != nil || s.Fetches() != 1 {
		t.Fatalf("Never with the image stored: %v", err)
	}
	if _, err := s.EnsureImage(ctx, ref, corev1.PullAlways, nil); err != nil || s.Fetches() != 2 {
		t.Fatalf("Always must fetch (%d): %v", s.Fetches(), err)
	}
	// By digest, and a digest that does not match.
	byDigest := reg.host + "/team/app@" + digest.String()
	if r, ok, _ := s.Lookup(byDigest); !ok || r.ID != rec.ID {
		t.Fatalf("Lookup by digest: %v", ok)
	}
	if _, err := s.Pull(ctx, byDigest, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pull(ctx, reg.host+"/team/app@sha256:"+strings.Repeat("1", 64), nil); err == nil {
		t.Fatal("an unknown digest was pulled")
	}

	// A failing image: ErrImagePull with the registry's words, then backoff.
	missing := reg.host + "/team/app:nope"
	_, err = s.EnsureImage(ctx, missing, corev1.PullIfNotPresent, nil)
	if !errors.As(err, &pe) || pe.Reason != ReasonErrImagePull || !strings.Contains(pe.Message, "MANIFEST_UNKNOWN") {
		t.Fatalf("missing tag: %v", err)
	}
	fetches := s.Fetches()
	_, err = s.EnsureImage(ctx, missing, corev1.PullIfNotPresent, nil)
	if !errors.As(err, &pe) || pe.Reason != ReasonImagePullBackOff || pe.Retry != 10*time.Second || !strings.Contains(pe.Message, "MANIFEST_UNKNOWN") || s.Fetches() != fetches {
		t.Fatalf("within backoff: %v (retry %v, fetches %d→%d)", err, pe.Retry, fetches, s.Fetches())
	}
	now = now.Add(10 * time.Second)
	if _, err = s.EnsureImage(ctx, missing, corev1.PullIfNotPresent, nil); !errors.As(err, &pe) || pe.Reason != ReasonErrImagePull || s.Fetches() != fetches+1 {
		t.Fatalf("after 10s: %v", err)
	}
	if _, err = s.EnsureImage(ctx, missing, corev1.PullIfNotPresent, nil); !errors.As(err, &pe) || pe.Retry != 20*time.Second {
		t.Fatalf("second backoff: %v", err)
	}
	// Other images are not held back by it.
	if _, err := s.EnsureImage(ctx, ref, corev1.PullAlways, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EnsureImage(ctx, "Bad//Ref", corev1.PullAlways, nil); !errors.As(err, &pe) || pe.Reason != ReasonInvalidImageName {
		t.Fatalf("invalid name: %v", err)
	}
}

func writeDockerConfig(t *testing.T, path, host, user, pass string) {
	t.Helper()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	b := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, host, auth)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(b), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestPullBasicAuthFromNodeConfig(t *testing.T) {
	reg := newTestRegistry(t, "basic")
	reg.push(t, "private/app:1", smallImage(t, "basic"))
	root := t.TempDir()
	ref := reg.host + "/private/app:1"

	anon, _ := Open(root, Options{CredentialFiles: noCreds})
	_, err := anon.EnsureImage(context.Background(), ref, corev1.PullAlways, nil)
	var pe *PullError
	if !errors.As(err, &pe) || pe.Reason != ReasonErrImagePull || !strings.Contains(pe.Message, "authentication required by the test registry") {
		t.Fatalf("anonymous pull: %v", err)
	}
	// <root-dir>/config.json is the first place looked at.
	writeDockerConfig(t, filepath.Join(root, "config.json"), reg.host, reg.user, reg.pass)
	s, _ := Open(root, Options{CredentialFiles: DefaultCredentialFiles(root)[:1]})
	if _, err := s.Pull(context.Background(), ref, nil); err != nil {
		t.Fatal(err)
	}
	// Order: the first file with an entry for the registry wins, even a wrong one.
	other := t.TempDir()
	writeDockerConfig(t, filepath.Join(other, "a.json"), reg.host, reg.user, "wrong")
	os.WriteFile(filepath.Join(other, "empty.json"), []byte(`{"auths":{}}`), 0o600)
	writeDockerConfig(t, filepath.Join(other, "b.json"), reg.host, reg.user, reg.pass)
	ok, _ := Open(t.TempDir(), Options{CredentialFiles: []string{filepath.Join(other, "missing.json"), filepath.Join(other, "empty.json"), filepath.Join(other, "b.json"), filepath.Join(other, "a.json")}})
	if _, err := ok.Pull(context.Background(), ref, nil); err != nil {
		t.Fatalf("entry in the third file: %v", err)
	}
	bad, _ := Open(t.TempDir(), Options{CredentialFiles: []string{filepath.Join(other, "a.json"), filepath.Join(other, "b.json")}})
	if _, err := bad.Pull(context.Background(), ref, nil); err == nil {
		t.Fatal("the wrong credentials of the first file should have been used")
	}
}

func TestPullBearerToken(t *testing.T) {
	reg := newTestRegistry(t, "bearer")
	reg.push(t, "private/app:1", smallImage(t, "bearer"))
	cfg := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`{"auths":{%q:{"username":%q,"password":%q}}}`, reg.host, reg.user, reg.pass)), 0o600)
	s := openStore(t, Options{CredentialFiles: []string{cfg}})
	rec, err := s.Pull(context.Background(), reg.host+"/private/app:1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, tokens := reg.counts(); tokens == 0 {
		t.Fatal("no token was requested")
	}
	if rec.Config.Cmd[0] != "bearer" {
		t.Fatalf("record %+v", rec)
	}
	anon := openStore(t, Options{CredentialFiles: noCreds})
	if _, err := anon.Pull(context.Background(), reg.host+"/private/app:1", nil); err == nil {
		t.Fatal("anonymous pull from a token registry succeeded")
	}
}

func TestPullCorruptBlobStoresNothing(t *testing.T) {
	reg := newTestRegistry(t, "")
	img := smallImage(t, "corrupt")
	reg.push(t, "x/y:1", img)
	layers, _ := img.Layers()
	d, _ := layers[1].Digest()
	reg.corrupt[d.String()] = true
	s := openStore(t, Options{CredentialFiles: noCreds})
	_, err := s.Pull(context.Background(), reg.host+"/x/y:1", nil)
	if err == nil {
		t.Fatal("corrupt blob accepted")
	}
	if !strings.Contains(err.Error(), d.String()) || !strings.Contains(err.Error(), "digest mismatch") {
		t.Fatalf("error does not say what was wrong: %v", err)
	}
	t.Logf("error: %v", err)
	if _, ok, _ := s.Lookup(reg.host + "/x/y:1"); ok {
		t.Fatal("image recorded")
	}
	diff, _ := layers[1].DiffID()
	if s.layerPresent(diff.String()) {
		t.Fatal("corrupt layer stored")
	}
	noLeftovers(t, s)
	// Fixed on the registry: the next pull works.
	reg.mu.Lock()
	reg.corrupt = map[string]bool{}
	reg.mu.Unlock()
	if _, err := s.Pull(context.Background(), reg.host+"/x/y:1", nil); err != nil {
		t.Fatal(err)
	}
}

func TestPullMultiPlatformIndex(t *testing.T) {
	reg := newTestRegistry(t, "")
	var adds []mutate.IndexAddendum
	for _, p := range []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64", Variant: "v8"}, {OS: "linux", Architecture: "s390x"}} {
		p := p
		img := imageOf(t, imagebuild.Config{Cmd: []string{p.Architecture}, Platform: &p}, layerOf(t, file("arch", p.Architecture)))
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	idx := mutate.AppendManifests(empty.Index, adds...)
	ref, _ := name.ParseReference(reg.pushHost + "/multi/arch:1")
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	idxDigest, _ := idx.Digest()

	for _, want := range []string{runtime.GOARCH, "arm64", "s390x"} {
		opts := Options{CredentialFiles: noCreds}
		if want != runtime.GOARCH {
			p := v1.Platform{OS: "linux", Architecture: want}
			if want == "arm64" {
				p.Variant = "v8"
			}
			opts.Platform = &p
		}
		s := openStore(t, opts)
		rec, err := s.Pull(context.Background(), reg.host+"/multi/arch:1", nil)
		if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" && want == runtime.GOARCH {
			continue // the index has no entry for this host
		}
		if err != nil {
			t.Fatalf("%s: %v", want, err)
		}
		if rec.Config.Cmd[0] != want || !strings.HasPrefix(rec.Platform, "linux/"+want) || rec.IndexDigest != idxDigest.String() {
			t.Fatalf("%s: got %+v", want, rec)
		}
		if rec.RepoDigests[0] != reg.host+"/multi/arch@"+idxDigest.String() {
			t.Fatalf("repo digest %v, want the index digest", rec.RepoDigests)
		}
		if _, ok, _ := s.Lookup(reg.host + "/multi/arch@" + idxDigest.String()); !ok {
			t.Fatal("lookup by index digest failed")
		}
	}
	p := v1.Platform{OS: "linux", Architecture: "riscv64"}
	s := openStore(t, Options{CredentialFiles: noCreds, Platform: &p})
	if _, err := s.Pull(context.Background(), reg.host+"/multi/arch:1", nil); err == nil || !strings.Contains(err.Error(), "no image for platform linux/riscv64") {
		t.Fatalf("riscv64: %v", err)
	}
}

func TestConcurrentPullsAreShared(t *testing.T) {
	reg := newTestRegistry(t, "")
	reg.push(t, "shared/img:1", smallImage(t, "shared"))
	gate := make(chan struct{})
	reg.gate = gate
	s := openStore(t, Options{CredentialFiles: noCreds})
	const n = 8
	var wg sync.WaitGroup
	ids := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec, err := s.EnsureImage(context.Background(), reg.host+"/shared/img:1", corev1.PullAlways, nil)
			ids[i], errs[i] = rec.ID, err
		}()
	}
	// Hold the registry until every caller waits on a pull: one fetch only
	// if they all joined the first.
	waitFor(t, "the first manifest request", func() bool { m, _ := reg.counts(); return m == 1 })
	waitFor(t, "every caller waiting on the pull", func() bool { return s.waitingPulls() == n })
	close(gate)
	wg.Wait()
	for i := range n {
		if errs[i] != nil || ids[i] == "" || ids[i] != ids[0] {
			t.Fatalf("caller %d: %q %v", i, ids[i], errs[i])
		}
	}
	if m, _ := reg.counts(); m != 1 || s.Fetches() != 1 {
		t.Fatalf("%d manifest requests, %d fetches for %d concurrent pulls; want 1", m, s.Fetches(), n)
	}
}
