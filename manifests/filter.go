package manifests

import (
	"strings"
)

// SkipReason says why a file in the manifest folder is not a manifest, or
// "" when it is one. The kubelet reads every file in the folder, editor
// swap files and dpkg leftovers included, and runs them as pods
// (kubernetes issues 40452, 83708, 136962); minikubelet reads only
// *.yaml, *.yml and *.json files that no editor or package manager owns.
func SkipReason(name string) string {
	switch {
	case name == "" || name == "." || name == "..":
		return "not a file name"
	case strings.HasPrefix(name, ".#"):
		return "emacs lock file"
	case strings.HasPrefix(name, "."):
		return "hidden file (editors and atomic writers use dotfiles for temporary copies)"
	case strings.HasPrefix(name, "#") && strings.HasSuffix(name, "#"):
		return "emacs auto-save file"
	case strings.HasSuffix(name, "~"):
		return "editor backup file"
	case name == "4913":
		return "vim's write-permission probe file"
	}
	lower := strings.ToLower(name)
	for _, leftover := range []struct{ suffix, what string }{
		{".swp", "vim swap file"}, {".swx", "vim swap file"}, {".swo", "vim swap file"},
		{".bak", "backup file"}, {".orig", "backup file"}, {".old", "backup file"},
		{".rej", "patch leftover"}, {".tmp", "temporary file"}, {".temp", "temporary file"},
		{".rpmnew", "rpm leftover"}, {".rpmsave", "rpm leftover"}, {".rpmorig", "rpm leftover"},
	} {
		if strings.HasSuffix(lower, leftover.suffix) {
			return leftover.what
		}
	}
	for _, marker := range []struct{ infix, what string }{
		{".dpkg-", "dpkg leftover"}, {".ucf-", "ucf leftover"}, {".rpmnew", "rpm leftover"},
		{".rpmsave", "rpm leftover"},
	} {
		if strings.Contains(lower, marker.infix) {
			return marker.what
		}
	}
	if !HasManifestExtension(name) {
		return "not a .yaml, .yml or .json file"
	}
	return ""
}

// IsManifestName reports whether a folder entry of this name is read as a manifest.
func IsManifestName(name string) bool { return SkipReason(name) == "" }
