// Package manifests turns the manifest folder into desired static pods, the
// way the kubelet's file source does (pkg/kubelet/config/file.go and
// common.go), with fewer sharp edges:
//
//   - Parse decodes one file strictly (unknown fields, wrong types and bad
//     quantities are errors naming the field path), applies the v1 defaults
//     the API server would apply, gives the pod its static identity
//     (<name>-<node>, UID = hash of the defaulted pod + node + file) and
//     validates it like the API server for what minikubelet supports.
//   - Source watches the folder (fsnotify plus a periodic full re-list),
//     skips editor and package-manager leftovers, waits for writers to close
//     a file before reading it, keeps a running pod's last good spec when its
//     file turns invalid, rejects a second file claiming the same pod name,
//     and publishes level-triggered snapshots of desired pods and per-file
//     errors for the reconciler.
package manifests
