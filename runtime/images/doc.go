// Package images is minikubelet's local image store: archive import, the
// airgap folder, registry pulls, garbage collection and the overlay root
// filesystem of every container.
//
// # On-disk layout (<root-dir>/images)
//
//	lock                    flock(2): held exclusively for every metadata write
//	ingest.lock             flock(2): shared while a pull/import runs, exclusive for layer GC
//	images.json             every image record (atomic temp+rename; readers need no lock)
//	blobs/sha256/<hex>      manifests, indexes and configs, content-addressed, digest verified
//	layers/sha256/<hex>/    one unpacked layer per diffID: diff/ (the tree) + layer.json
//	rootfs/<id>.json        one record per container root filesystem ("in use")
//	import/                 the airgap folder: archives dropped here are imported
//	airgap.json             which airgap files were already imported (path, size, mtime, digest)
//	empty/                  an empty directory (the lowerdir of an image without layers)
//	tmp/                    work in progress (unpacks, decompressed archives); never trusted
//
// Compressed layer blobs are not kept after unpacking (like containerd's
// discard_unpacked_layers): the unpacked tree is what containers use, and its
// content was verified against the diffID chain of the config, whose digest is
// verified against the manifest, whose digest is verified against the reference
// or the registry. Docker archives carry no manifest digest (docker load has no
// RepoDigest either); their image ID is the config digest as in Docker.
//
// # Layers and overlayfs
//
// Every layer is its own overlay lowerdir, so it is stored in overlay's native
// format, converted at unpack time as containerd's overlay snapshotter does:
// an OCI whiteout ".wh.NAME" becomes a 0/0 character device NAME, an opaque
// marker ".wh..wh..opq" becomes the trusted.overlay.opaque=y xattr on its
// directory. This needs root (mknod, trusted.* xattrs); the store is used by
// the root daemon and the root CLI. Since the stored form of a layer depends on
// its own content only, layers are keyed by diffID (not chainID) and shared by
// every image that contains them, whatever lies beneath.
//
// Unpacking is confined to the layer directory: entry names are cleaned as if
// rooted ("../x" and "/x" both land at <layer>/x, as containerd does), every
// parent is resolved with filepath-securejoin's openat-style walk (symlinks in
// the layer resolve inside the layer) and every change is made with *at(2)
// calls relative to that parent handle with O_NOFOLLOW; hard-link targets are
// resolved the same way. An unpack runs in tmp/ and is renamed into layers/
// only once complete, so nothing half-written ever looks like a layer.
//
// # Concurrency
//
// The daemon and any number of CLI processes may use one store at once. Metadata
// (images.json, rootfs records, airgap.json) is only written under the
// exclusive flock on "lock", always as temp file + rename, so readers (Lookup,
// List) read a consistent snapshot without locking. Pulls and imports hold
// "ingest.lock" shared; the layer/blob GC takes it exclusively without waiting
// and skips the sweep when an ingest is running (a layer unpacked but not yet
// recorded must not be collected). Within one process, concurrent pulls of the
// same reference share one fetch (singleflight).
//
// # Containers and "in use"
//
// PrepareRootfs writes rootfs/<id>.json (image ID, layers, container dir)
// before it returns; ReleaseRootfs removes it after the caller unmounted the
// root. An image is in use while any rootfs record names it: `image rm` refuses
// it, and the GC keeps every layer a rootfs record lists. The upper and work
// directories live in the caller's container directory, so a restarted
// container keeps its writes and removing the pod directory removes them.
//
// # Credentials for pulls
//
// Node-local docker-style config.json files (static pods cannot use
// imagePullSecrets), searched in this order; the first file that has an entry
// for the image's repository or registry wins:
//
//  1. <root-dir>/config.json
//  2. /var/lib/kubelet/config.json (where kubelet users already keep them)
//  3. $DOCKER_CONFIG/config.json, then $HOME/.docker/config.json
//
// Entries are read with docker/cli's config loader, so "auth", "username" /
// "password", "identitytoken" and credsStore/credHelpers helpers all work.
// No entry: anonymous. Bearer-token registries are handled by the registry
// client (the token exchange uses these credentials).
package images
