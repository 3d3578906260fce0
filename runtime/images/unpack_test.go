package images

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/minikubelet/minikubelet/internal/testnode"
)

func unpackEntries(t *testing.T, entries ...entry) (string, error) {
	t.Helper()
	layer := filepath.Join(t.TempDir(), "diff")
	if err := os.Mkdir(layer, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := unpackLayer(bytes.NewReader(tarBytes(t, entries...)), layer)
	return layer, err
}

// outsideDir is a folder beside the layer that must never change.
func outsideDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	if err := os.WriteFile(filepath.Join(d, "victim"), []byte("orig"), 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

func assertUntouched(t *testing.T, outside string) {
	t.Helper()
	ents, _ := os.ReadDir(outside)
	if len(ents) != 1 || ents[0].Name() != "victim" {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("outside dir changed: %v", names)
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(outside, "victim"), &st); err != nil || st.Nlink != 1 {
		t.Fatalf("victim: nlink %d, %v (a hard link escaped)", st.Nlink, err)
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "victim")); string(b) != "orig" {
		t.Fatalf("victim overwritten: %q", b)
	}
}

func TestUnpackStaysInsideTheLayer(t *testing.T) {
	outside := outsideDir(t)
	rel := strings.Repeat("../", 12) + strings.TrimPrefix(outside, "/")
	mirror := strings.TrimPrefix(outside, "/") + "/" // the outside path, inside the layer
	layer, err := unpackEntries(t,
		file("../../escape-dotdot", "1"),
		file("/escape-abs", "2"),
		file("a/../../../escape-mid", "3"),
		dir(mirror),              // so that symlinks to the outside path resolve (inside)
		symlink("evil", outside), // absolute symlink to the outside
		file("evil/pwned", "4"),
		file("evil/victim", "overwritten"),
		symlink("up", rel), // relative symlink climbing out
		file("up/pwned2", "5"),
		dir("d/"), file("d/f", "6"),
		symlink("d", outside), // a directory replaced by a symlink, then written through
		file("d/g", "7"),
		symlink("link-to-victim", filepath.Join(outside, "victim")),
		hardlink("hl", "link-to-victim"), // links the symlink itself, not its target
	)
	if err != nil {
		t.Fatal(err)
	}
	assertUntouched(t, outside)
	inside := filepath.Join(layer, mirror)
	for p, want := range map[string]string{
		"escape-dotdot": "1", "escape-abs": "2", "escape-mid": "3",
		inside + "/pwned": "4", inside + "/victim": "overwritten", inside + "/pwned2": "5", inside + "/g": "7",
	} {
		if !filepath.IsAbs(p) {
			p = filepath.Join(layer, p)
		}
		if b, err := os.ReadFile(p); err != nil || string(b) != want {
			t.Errorf("%s: %q %v", p, b, err)
		}
	}
	if fi, err := os.Lstat(filepath.Join(layer, "hl")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("hl should be a hard link of the symlink: %v %v", fi, err)
	}

	// Without the mirror the symlinks dangle inside the layer: writing
	// through them is refused (well-formed layers never do it), and the
	// outside is still untouched.
	for name, entries := range map[string][]entry{
		"absolute symlink": {symlink("evil", outside), file("evil/pwned", "x")},
		"climbing symlink": {symlink("up", rel), file("up/pwned", "x")},
		"symlink to file":  {symlink("v", filepath.Join(outside, "victim")), file("v", "x")},
	} {
		t.Run(name, func(t *testing.T) {
			layer, err := unpackEntries(t, entries...)
			assertUntouched(t, outside)
			if err == nil {
				// Only acceptable when the write replaced the symlink itself.
				if b, _ := os.ReadFile(filepath.Join(layer, entries[1].name)); string(b) != "x" {
					t.Fatalf("entry written somewhere else")
				}
			}
		})
	}
}

func TestUnpackRefusesHardLinksOutside(t *testing.T) {
	outside := outsideDir(t)
	for name, entries := range map[string][]entry{
		"dot-dot":         {hardlink("hl", strings.Repeat("../", 12)+strings.TrimPrefix(outside, "/")+"/victim")},
		"absolute":        {hardlink("hl", filepath.Join(outside, "victim"))},
		"symlinked dir":   {symlink("p", outside), hardlink("hl", "p/victim")},
		"symlinked dir 2": {symlink("p", strings.Repeat("../", 12)), hardlink("hl", "p"+outside+"/victim")},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := unpackEntries(t, entries...)
			if err == nil {
				t.Fatal("a hard link to a file outside the layer was accepted")
			}
			if !strings.Contains(err.Error(), `layer entry "hl"`) {
				t.Fatalf("error should name the entry: %v", err)
			}
			assertUntouched(t, outside)
		})
	}
}

func TestUnpackReplacesAndKeepsMetadata(t *testing.T) {
	mt := time.Unix(1600000000, 0)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdrs := []*tar.Header{
		{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mt},
		{Name: "bin/su", Typeflag: tar.TypeReg, Mode: 0o4755, Uid: 1000, Gid: 1001, Size: 2, ModTime: mt, PAXRecords: map[string]string{"SCHILY.xattr.user.note": "hi", "SCHILY.xattr.trusted.overlay.opaque": "y"}},
		{Name: "bin/su2", Typeflag: tar.TypeLink, Linkname: "bin/su", ModTime: mt},
		{Name: "x", Typeflag: tar.TypeReg, Mode: 0o644, Size: 2, ModTime: mt},
		{Name: "x/", Typeflag: tar.TypeDir, Mode: 0o700, ModTime: mt}, // a file replaced by a dir
		{Name: "fifo", Typeflag: tar.TypeFifo, Mode: 0o600, ModTime: mt},
		{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777, ModTime: mt},
	}
	root := os.Geteuid() == 0
	if root {
		hdrs = append(hdrs, &tar.Header{Name: "dev/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3, ModTime: mt})
	}
	for _, h := range hdrs {
		h.Format = tar.FormatPAX
		tw.WriteHeader(h)
		if h.Size > 0 {
			tw.Write([]byte("ok"))
		}
	}
	tw.Close()
	layer := filepath.Join(t.TempDir(), "diff")
	os.Mkdir(layer, 0o755)
	if _, err := unpackLayer(&buf, layer); err != nil {
		t.Fatal(err)
	}
	var st, st2 unix.Stat_t
	unix.Lstat(filepath.Join(layer, "bin/su"), &st)
	unix.Lstat(filepath.Join(layer, "bin/su2"), &st2)
	if st.Mode&0o7777 != 0o4755 || st.Ino != st2.Ino || st.Mtim.Sec != mt.Unix() {
		t.Fatalf("bin/su: mode %o ino %d/%d mtime %d", st.Mode&0o7777, st.Ino, st2.Ino, st.Mtim.Sec)
	}
	if root && (st.Uid != 1000 || st.Gid != 1001) {
		t.Fatalf("bin/su owner %d:%d", st.Uid, st.Gid)
	}
	val := make([]byte, 16)
	if n, err := unix.Getxattr(filepath.Join(layer, "bin/su"), "user.note", val); err == nil && string(val[:n]) != "hi" {
		t.Fatalf("user.note = %q", val[:n])
	}
	if root {
		if _, err := unix.Getxattr(filepath.Join(layer, "bin/su"), "trusted.overlay.opaque", val); err == nil {
			t.Fatal("a trusted.overlay xattr from the image was applied")
		}
	}
	for p, want := range map[string]uint32{"x": unix.S_IFDIR | 0o700, "fifo": unix.S_IFIFO | 0o600, "tmp": unix.S_IFDIR | 0o1777} {
		unix.Lstat(filepath.Join(layer, p), &st)
		if st.Mode != want {
			t.Errorf("%s: mode %o, want %o", p, st.Mode, want)
		}
	}
	unix.Lstat(filepath.Join(layer, "bin"), &st)
	if st.Mtim.Sec != mt.Unix() {
		t.Errorf("bin: directory mtime %d not restored after its children", st.Mtim.Sec)
	}
	if root {
		unix.Lstat(filepath.Join(layer, "dev/null"), &st)
		if st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != 1 || unix.Minor(st.Rdev) != 3 {
			t.Errorf("dev/null: mode %o rdev %d", st.Mode, st.Rdev)
		}
	}
}

func TestUnpackConvertsWhiteouts(t *testing.T) {
	testnode.RequireRoot(t)
	layer, err := unpackEntries(t, dir("a/"), file("a/.wh.gone", ""), dir("o/"), file("o/.wh..wh..opq", ""), file("o/new", "n"), file(".wh..wh.plnk", ""))
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(layer, "a/gone"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Fatalf("a/gone is not a 0/0 whiteout: %o %d %v", st.Mode, st.Rdev, err)
	}
	val := make([]byte, 4)
	if n, err := unix.Getxattr(filepath.Join(layer, "o"), overlayOpaqueXattr, val); err != nil || string(val[:n]) != "y" {
		t.Fatalf("o not opaque: %q %v", val[:n], err)
	}
	for _, p := range []string{"a/.wh.gone", "o/.wh..wh..opq", ".wh..wh.plnk"} {
		if _, err := os.Lstat(filepath.Join(layer, p)); err == nil {
			t.Errorf("%s kept as a file", p)
		}
	}
}
