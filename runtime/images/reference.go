package images

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Reference is an image reference normalised like Docker and containerd do:
// "busybox" → docker.io/library/busybox:latest.
type Reference struct {
	Registry   string // docker.io, registry.k8s.io, localhost:5000 ...
	Repository string // registry/path, e.g. docker.io/library/busybox
	Tag        string // "" when Digest is set and no tag was given
	Digest     string // sha256:... or ""
}

// String is the normalised form: repo:tag, repo@digest or repo:tag@digest.
func (r Reference) String() string {
	s := r.Repository
	if r.Tag != "" && r.Digest == "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// TagRef is repo:tag (empty when the reference has no tag).
func (r Reference) TagRef() string {
	if r.Tag == "" {
		return ""
	}
	return r.Repository + ":" + r.Tag
}

// ParseReference parses and normalises an image reference. A reference with
// both tag and digest keeps only the digest for lookups (as containerd does),
// the tag is kept in Tag for display.
func ParseReference(ref string) (Reference, error) {
	if strings.TrimSpace(ref) != ref || ref == "" {
		return Reference{}, fmt.Errorf("invalid image reference %q", ref)
	}
	var out Reference
	body := ref
	if i := strings.Index(ref, "@"); i >= 0 {
		d, err := name.NewDigest(ref)
		if err != nil {
			return Reference{}, fmt.Errorf("invalid image reference %q: %w", ref, err)
		}
		out.Digest = d.DigestStr()
		body = ref[:i]
	}
	t, err := name.NewTag(body)
	if err != nil {
		return Reference{}, fmt.Errorf("invalid image reference %q: %w", ref, err)
	}
	out.Registry = dockerRegistry(t.RegistryStr())
	out.Repository = out.Registry + "/" + t.RepositoryStr()
	if out.Digest == "" || hasExplicitTag(body) {
		out.Tag = t.TagStr()
	}
	return out, nil
}

func hasExplicitTag(s string) bool {
	i := strings.LastIndex(s, ":")
	return i > strings.LastIndex(s, "/")
}

// dockerRegistry maps go-containerregistry's Docker Hub host to the name
// Docker and containerd show.
func dockerRegistry(r string) string {
	if r == name.DefaultRegistry || r == "registry-1.docker.io" {
		return "docker.io"
	}
	return r
}

// nameReference turns a normalised reference into go-containerregistry's
// form, plain HTTP for insecure registries.
func (s *Store) nameReference(r Reference) (name.Reference, error) {
	var opts []name.Option
	if s.insecure(r.Registry) {
		opts = append(opts, name.Insecure)
	}
	if r.Digest != "" {
		return name.NewDigest(r.Repository+"@"+r.Digest, opts...)
	}
	return name.NewTag(r.Repository+":"+r.Tag, opts...)
}

func (s *Store) insecure(registry string) bool {
	for _, h := range s.opts.InsecureRegistries {
		h = strings.TrimPrefix(strings.TrimPrefix(h, "http://"), "https://")
		if strings.TrimSuffix(h, "/") == registry {
			return true
		}
	}
	return false
}
