package runtime

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"github.com/moby/sys/user"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"

	"github.com/minikubelet/minikubelet/runtime/shim"
)

// maxAccountFile bounds what is read of an image's /etc/passwd or
// /etc/group: the daemon reads them, the image's author writes them.
const maxAccountFile = 4 << 20

// imageAccounts is an image's /etc/passwd and /etc/group as parsed by
// moby/sys/user (runc's and containerd's parser); nil when absent.
type imageAccounts struct {
	users  []user.User
	groups []user.Group
}

// readImageAccounts reads the image's account files through its root.
func readImageAccounts(root string) (imageAccounts, error) {
	var a imageAccounts
	pw, err := openImageFile(root, "/etc/passwd")
	if err != nil {
		return a, err
	}
	if pw != nil {
		defer pw.Close()
		r, err := readLimited(pw, "/etc/passwd")
		if err != nil {
			return a, err
		}
		if a.users, err = user.ParsePasswd(r); err != nil {
			return a, fmt.Errorf("image's /etc/passwd: %w", err)
		}
	}
	gr, err := openImageFile(root, "/etc/group")
	if err != nil {
		return a, err
	}
	if gr != nil {
		defer gr.Close()
		r, err := readLimited(gr, "/etc/group")
		if err != nil {
			return a, err
		}
		if a.groups, err = user.ParseGroup(r); err != nil {
			return a, fmt.Errorf("image's /etc/group: %w", err)
		}
	}
	return a, nil
}

// readLimited reads f whole, up to maxAccountFile bytes.
func readLimited(f *os.File, name string) (io.Reader, error) {
	b, err := io.ReadAll(io.LimitReader(f, maxAccountFile+1))
	if err != nil {
		return nil, fmt.Errorf("image's %s: %w", name, err)
	}
	if len(b) > maxAccountFile {
		return nil, fmt.Errorf("image's %s is larger than %d bytes", name, maxAccountFile)
	}
	return bytes.NewReader(b), nil
}

// openImageFile opens name inside root, as if root were "/": every
// symlink, absolute or relative, is resolved inside it (pathrs-lite), so an
// image's /etc/passwd -> /etc/shadow reads the image's file, never the
// host's, even though the daemon reads it from the host's mount namespace.
// Only a regular file is opened: a FIFO would block the daemon, a device
// could be anything. A missing file is (nil, nil).
func openImageFile(root, name string) (*os.File, error) {
	rootF, err := os.OpenFile(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("image root %s: %w", root, err)
	}
	defer rootF.Close()
	h, err := pathrs.OpenatInRoot(rootF, name)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("image's %s: %w", name, err)
	}
	defer h.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(h.Fd()), &st); err != nil {
		return nil, fmt.Errorf("image's %s: %w", name, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("image's %s is not a regular file (mode %#o)", name, st.Mode&unix.S_IFMT)
	}
	// The same inode the handle holds: nothing can be swapped in between.
	f, err := pathrs.Reopen(h, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("image's %s: %w", name, err)
	}
	return f, nil
}

// resolveUser sets the process's UID, GID, supplementary groups and HOME
// the way the kubelet and containerd do together:
//
//   - the kubelet takes the image's USER apart: a numeric user becomes the
//     uid, a name the username, no USER uid 0; the group part of USER is
//     dropped (kubernetes#61967, containerd#11607: Kubernetes ignores it);
//     runAsUser replaces the image's user; runAsNonRoot is checked there;
//   - containerd resolves "user[:runAsGroup]" in the image's /etc/passwd: a
//     uid not listed runs with gid 0, a name not listed is an error;
//   - supplementary groups are the primary gid, the image's /etc/group
//     groups that list the user's name (not with supplementalGroupsPolicy
//     Strict), fsGroup and supplementalGroups;
//   - HOME, unless the image or the container sets it, is the user's home
//     in /etc/passwd, else "/" (runc).
//
// The image's files are read inside its root, never through a symlink out
// of it (readImageAccounts).
func resolveUser(spec *shim.ContainerSpec, pod *v1.Pod, c *v1.Container, sc v1.SecurityContext, imageUser string) error {
	// The kubelet's half (getImageUser, determineEffectiveSecurityContext).
	var uid int64
	userName := ""
	if sc.RunAsUser != nil {
		uid = *sc.RunAsUser
	} else if u, _, _ := strings.Cut(imageUser, ":"); u != "" {
		if n, err := strconv.ParseInt(u, 10, 64); err == nil {
			uid = n
		} else {
			userName = u
		}
	}
	if sc.RunAsNonRoot != nil && *sc.RunAsNonRoot {
		switch {
		case sc.RunAsUser != nil && uid == 0:
			return fmt.Errorf("container's runAsUser breaks non-root policy (pod: %q, container: %s)", pod.Name, c.Name)
		case userName != "":
			// A name is not trusted to be non-root even when /etc/passwd maps it elsewhere.
			return fmt.Errorf("container has runAsNonRoot and image has non-numeric user (%s), cannot verify user is non-root (pod: %q, container: %s)", userName, pod.Name, c.Name)
		case uid == 0:
			return fmt.Errorf("container has runAsNonRoot and image will run as root (pod: %q, container: %s)", pod.Name, c.Name)
		}
	}
	if uid < 0 || uid > 1<<31-1 {
		return fmt.Errorf("container %s: user %d is out of range", c.Name, uid)
	}
	// containerd's half (oci.WithUser, WithAdditionalGIDs, WithSupplementalGroups).
	acc, err := readImageAccounts(spec.Rootfs)
	if err != nil {
		return fmt.Errorf("container %s: %w", c.Name, err)
	}
	var entry *user.User
	for i := range acc.users {
		u := &acc.users[i]
		if (userName != "" && u.Name == userName) || (userName == "" && int64(u.Uid) == uid) {
			entry = u // the first match wins, as in runc and containerd
			break
		}
	}
	gid := int64(0)
	switch {
	case entry != nil:
		uid, gid = int64(entry.Uid), int64(entry.Gid)
	case userName != "":
		return fmt.Errorf("container %s: unable to find user %s in the image's /etc/passwd", c.Name, userName)
	}
	if sc.RunAsGroup != nil {
		gid = *sc.RunAsGroup
	}
	if gid < 0 || gid > 1<<31-1 {
		return fmt.Errorf("container %s: group %d is out of range", c.Name, gid)
	}
	spec.UID, spec.GID = uint32(uid), uint32(gid)

	gids := []uint32{uint32(gid)}
	seen := map[uint32]bool{uint32(gid): true}
	add := func(g int64) {
		if g >= 0 && g <= 1<<31-1 && !seen[uint32(g)] {
			seen[uint32(g)] = true
			gids = append(gids, uint32(g))
		}
	}
	psc := pod.Spec.SecurityContext
	strict := psc != nil && psc.SupplementalGroupsPolicy != nil && *psc.SupplementalGroupsPolicy == v1.SupplementalGroupsPolicyStrict
	if entry != nil && !strict {
		for _, g := range acc.groups {
			for _, member := range g.List {
				if member == entry.Name {
					add(int64(g.Gid))
					break
				}
			}
		}
	}
	if psc != nil {
		if psc.FSGroup != nil {
			add(*psc.FSGroup)
		}
		for _, g := range psc.SupplementalGroups {
			add(g)
		}
	}
	spec.AdditionalGIDs = gids

	for _, e := range spec.Env {
		if strings.HasPrefix(e, "HOME=") {
			return nil
		}
	}
	home := "/"
	for i := range acc.users {
		if int64(acc.users[i].Uid) == uid {
			if acc.users[i].Home != "" {
				home = acc.users[i].Home
			}
			break
		}
	}
	spec.Env = append(spec.Env, "HOME="+home)
	return nil
}
