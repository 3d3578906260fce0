package images

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker/cli/cli/config/configfile"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
)

// DefaultCredentialFiles is the config.json search order for a root dir.
func DefaultCredentialFiles(rootDir string) []string {
	files := []string{filepath.Join(rootDir, "config.json"), "/var/lib/kubelet/config.json"}
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		files = append(files, filepath.Join(d, "config.json"))
	}
	if h, err := os.UserHomeDir(); err == nil {
		files = append(files, filepath.Join(h, ".docker", "config.json"))
	}
	return files
}

// fileKeychain resolves credentials from docker-style config.json files in
// order; the first file with an entry for the repository or registry wins.
type fileKeychain struct{ files []string }

func (k fileKeychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	keys := []string{target.String(), target.RegistryStr()}
	if target.RegistryStr() == name.DefaultRegistry {
		keys = append(keys, authn.DefaultAuthKey, "docker.io")
	}
	for _, f := range k.files {
		fh, err := os.Open(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("credentials %s: %w", f, err)
		}
		cf := configfile.New(f)
		err = cf.LoadFromReader(fh)
		fh.Close()
		if err != nil {
			return nil, fmt.Errorf("credentials %s: %w", f, err)
		}
		for _, key := range keys {
			ac, err := cf.GetAuthConfig(key)
			if err != nil {
				return nil, fmt.Errorf("credentials %s for %s: %w", f, key, err)
			}
			ac.ServerAddress = ""
			if ac != (types.AuthConfig{}) {
				return authn.FromConfig(authn.AuthConfig{
					Username: ac.Username, Password: ac.Password, Auth: ac.Auth,
					IdentityToken: ac.IdentityToken, RegistryToken: ac.RegistryToken,
				}), nil
			}
		}
	}
	return authn.Anonymous, nil
}

func (s *Store) keychain() authn.Keychain {
	if s.opts.Keychain != nil {
		return s.opts.Keychain
	}
	files := s.opts.CredentialFiles
	if files == nil {
		files = DefaultCredentialFiles(s.rootDir)
	}
	return fileKeychain{files: files}
}

// Pull fetches ref from its registry (always, whatever is stored), resolving
// a multi-platform index to the host platform. Concurrent pulls of the same
// reference in this process share one fetch.
func (s *Store) Pull(ctx context.Context, ref string, progress ProgressFunc) (Record, error) {
	r, err := ParseReference(ref)
	if err != nil {
		return Record{}, err
	}
	key := r.String()
	s.mu.Lock()
	s.pullers++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.pullers--
		s.mu.Unlock()
	}()
	ch := s.pulls.DoChan(key, func() (any, error) {
		// Detached from the first caller's context: others may still wait.
		// Cancelled only when every caller is gone would be nicer; a pull
		// that nobody waits for still completes and is stored.
		return s.pull(context.WithoutCancel(ctx), r, progress)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return Record{}, res.Err
		}
		return res.Val.(Record), nil
	case <-ctx.Done():
		return Record{}, ctx.Err()
	}
}

// Fetches is how many registry pulls this Store actually performed.
func (s *Store) Fetches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches
}

// waitingPulls is how many Pull calls wait on a fetch now.
func (s *Store) waitingPulls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pullers
}

func (s *Store) pull(ctx context.Context, r Reference, progress ProgressFunc) (Record, error) {
	s.mu.Lock()
	s.fetches++
	s.mu.Unlock()
	nref, err := s.nameReference(r)
	if err != nil {
		return Record{}, err
	}
	tr := s.opts.Transport
	if tr == nil {
		tr = http.DefaultTransport
	}
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(s.keychain()),
		remote.WithTransport(tr),
		remote.WithPlatform(s.plat),
		remote.WithUserAgent("minikubelet"),
	}
	desc, err := remote.Get(nref, opts...)
	if err != nil {
		return Record{}, fmt.Errorf("pulling %s: %w", r, registryError(err))
	}
	src := ingestSource{ref: r.String(), source: "pull", platform: s.plat}
	if r.Tag != "" {
		src.tags = []string{r.TagRef()}
	}
	src.repoDigests = []string{r.Repository + "@" + desc.Digest.String()}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return Record{}, fmt.Errorf("pulling %s: %w", r, registryError(err))
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return Record{}, fmt.Errorf("pulling %s: %w", r, registryError(err))
		}
		pick, err := pickPlatform(im, s.plat)
		if err != nil {
			return Record{}, fmt.Errorf("pulling %s: %w", r, err)
		}
		src.rawIndex = desc.Manifest
		if src.img, err = idx.Image(pick.Digest); err != nil {
			return Record{}, fmt.Errorf("pulling %s: %w", r, registryError(err))
		}
		if src.rawManifest, err = verifiedRaw(src.img, pick.Digest); err != nil {
			return Record{}, fmt.Errorf("pulling %s: %w", r, err)
		}
	} else {
		if src.img, err = desc.Image(); err != nil {
			return Record{}, fmt.Errorf("pulling %s: %w", r, registryError(err))
		}
		src.rawManifest = desc.Manifest
	}
	if got := sha256Digest(desc.Manifest); got != desc.Digest.String() || (r.Digest != "" && got != r.Digest) {
		return Record{}, fmt.Errorf("pulling %s: manifest digest mismatch: got %s", r, got)
	}
	ing, err := s.lock("ingest.lock", unix.LOCK_SH)
	if err != nil {
		return Record{}, err
	}
	defer unlock(ing)
	rec, err := s.ingest(ctx, src, progress)
	if err != nil {
		return Record{}, registryError(err) // ingest names the image and the layer
	}
	return rec, nil
}

// registryError keeps the registry's own message (what kubelet shows in
// the container status) and drops go-containerregistry's wrapping noise.
func registryError(err error) error {
	var te *transport.Error
	if errors.As(err, &te) && len(te.Errors) > 0 {
		var msgs []string
		for _, d := range te.Errors {
			msgs = append(msgs, d.String())
		}
		return fmt.Errorf("%s (HTTP %d)", strings.Join(msgs, "; "), te.StatusCode)
	}
	return err
}

// Reasons in container status, as kubelet names them.
const (
	ReasonErrImagePull      = "ErrImagePull"
	ReasonImagePullBackOff  = "ImagePullBackOff"
	ReasonErrImageNeverPull = "ErrImageNeverPull"
	ReasonInvalidImageName  = "InvalidImageName"
)

// PullError is what EnsureImage returns when the image is not available.
type PullError struct {
	Reason  string        // ErrImagePull, ImagePullBackOff, ErrImageNeverPull, InvalidImageName
	Message string        // for the container status: the registry's own words
	Retry   time.Duration // ImagePullBackOff: time left before the next attempt
	Err     error
}

func (e *PullError) Error() string { return e.Reason + ": " + e.Message }
func (e *PullError) Unwrap() error { return e.Err }

// EnsureImage makes the image of a container available following its
// imagePullPolicy (Always: pull; IfNotPresent: pull when missing; Never: use
// what is stored or fail). "" is treated as Kubernetes defaults it (Always for
// :latest or no tag, else IfNotPresent); the manifests package normally
// defaults it already. Images named localhost/... are local-only (never
// pulled, as podman does). Failed pulls back off per image (10 s doubling to
// 300 s); during the backoff no pull is tried and ImagePullBackOff is
// returned with the last registry message.
func (s *Store) EnsureImage(ctx context.Context, ref string, policy corev1.PullPolicy, progress ProgressFunc) (Record, error) {
	r, err := ParseReference(ref)
	if err != nil {
		return Record{}, &PullError{Reason: ReasonInvalidImageName, Message: fmt.Sprintf("Failed to apply default image tag %q: %v", ref, err), Err: err}
	}
	if policy == "" {
		policy = DefaultPullPolicy(ref)
	}
	rec, found, err := s.Lookup(r.String())
	if err != nil {
		return Record{}, err
	}
	if r.Registry == "localhost" {
		// podman's habit: "localhost/..." (no port) names a local-only
		// image (imported or built here); there is no registry to ask, so
		// even Always uses what is stored.
		if found {
			return rec, nil
		}
		return Record{}, &PullError{Reason: ReasonErrImagePull,
			Message: fmt.Sprintf("image %q is local-only (localhost/...) and not in the store: import it with `minikubelet image import` or the airgap folder", ref)}
	}
	switch policy {
	case corev1.PullNever:
		if found {
			return rec, nil
		}
		return Record{}, &PullError{Reason: ReasonErrImageNeverPull,
			Message: fmt.Sprintf("Container image %q is not present with pull policy of Never", ref)}
	case corev1.PullIfNotPresent:
		if found {
			return rec, nil
		}
	case corev1.PullAlways:
	default:
		return Record{}, fmt.Errorf("image %q: unknown imagePullPolicy %q", ref, policy)
	}
	key := r.String()
	if wait, lastErr := s.backoff.Blocked(key); wait > 0 {
		return Record{}, &PullError{Reason: ReasonImagePullBackOff, Retry: wait, Err: lastErr,
			Message: fmt.Sprintf("Back-off pulling image %q: %v", ref, lastErr)}
	}
	rec, err = s.Pull(ctx, ref, progress)
	if err != nil {
		if ctx.Err() != nil {
			return Record{}, err // our shutdown, not the registry's fault
		}
		s.backoff.Failure(key, err)
		return Record{}, &PullError{Reason: ReasonErrImagePull, Message: err.Error(), Err: err}
	}
	s.backoff.Success(key)
	return rec, nil
}

// DefaultPullPolicy is Kubernetes' default: Always for :latest or no tag
// (digest references excepted), else IfNotPresent.
func DefaultPullPolicy(ref string) corev1.PullPolicy {
	r, err := ParseReference(ref)
	if err == nil && r.Digest == "" && r.Tag == "latest" {
		return corev1.PullAlways
	}
	return corev1.PullIfNotPresent
}
