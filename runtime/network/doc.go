// Package network gives pods an IP through CNI, as kubelet (via its runtime)
// and podman do: libcni driving the standard plugins (Debian
// containernetworking-plugins in /usr/lib/cni, or /opt/cni/bin).
//
// Config. The first valid config of --cni-conf-dir in lexical order
// (.conflist, .conf, .json; a .conf is wrapped into a list) is used, as
// kubelet does; the folder is re-read when it or the file changes. When it
// holds none, DefaultConflist is written there as 87-minikubelet-bridge.conflist
// (the podman habit): bridge "mkl0" (gateway, hairpin), host-local IPAM over
// --pod-cidr (default 10.86.0.0/16, chosen to miss podman, containerd,
// CRI-O, k3s, flannel, calico, docker and the kubeadm service range) keeping
// its state in <root-dir>/cni/ipam, and portmap (hostPort, snat). The CNI
// cache lives in <root-dir>/cni/cache, not /var/lib/cni.
//
// Node rules. For the default network the manager itself masquerades pod
// traffic leaving the pod CIDR and accepts it in FORWARD (hosts whose
// policy is DROP) with two node-level chains, kubenet's way, instead of the
// bridge plugin's ipMasq and the firewall plugin: their per-pod rules cost
// ~20 iptables commands per ADD and DEL; now a pod without hostPorts costs
// none (noderules.go). A config brought by the user is used as it is.
//
// Loopback-only mode. When a plugin binary the config needs is missing from
// --cni-bin-dir, pods get loopback only: Setup returns Result{LoopbackOnly:
// true} without error, Status says why, one warning is logged (again only
// if the reason changes), and the plugins are looked for again at each
// Setup so installing them heals the node. The sandbox brings lo up itself
// in every mode; this package does not run the loopback plugin.
//
// Who calls what. The pod runtime calls Setup after it created the pause
// process (NetnsPath = its /proc/<pid>/ns/net or a bind mount) and before
// containers start; Teardown when the sandbox goes (before or after pause
// dies); Check when it adopts a running pod after a daemon restart (the
// result carries the pod IPs for status); Leftovers at start-up, tearing down
// attachments whose UID is no longer a pod. hostNetwork pods never reach
// this package: the caller skips it for them (kubernetes #43397: kubelet
// blocking host-network pods on CNI readiness).
//
// Identity. The CNI container ID is the pod UID; CNI_ARGS carry
// K8S_POD_NAMESPACE/NAME/UID like kubelet's, and the cache stores them, so
// Leftovers can name pods and Teardown needs only the UID. A Setup for a
// UID that is still cached first releases the old attachment (a recreated
// sandbox).
//
// hostPort. Given to portmap as the portMappings capability. A registry
// refuses a second pod asking for the same protocol/port on an overlapping
// host IP (wildcard overlaps everything) with *HostPortConflictError naming
// the holder. It is rebuilt from the CNI cache by New, so a crash does not
// forget holders. hostPort on 127.0.0.1 works through portmap's snat
// (default true): it sets route_localnet=1 on the bridge, DNATs locally
// generated packets in OUTPUT and masquerades 127.0.0.0/8 sources (verified
// in the tests). A pod reaching its own hostPort needs hairpinMode (on).
//
// Crash safety and the Debian 12 plugins (1.1.1). DEL is run with the
// config cached at ADD. When the netns is gone or unknown (or eth0 was
// deleted), the bridge plugin releases the IP but leaves its masquerade
// chain, and without a netns the veth stays while the netns lives on:
// Teardown removes both itself (cleanup.go).
// portmap 1.1.1's CHECK wrongly wants an IPv6 chain for IPv4-only pods:
// Check works around it (checkList). A failed ADD is undone with DEL.
//
// Tests run the package in private network and mount namespaces (nettest),
// so bridges, rules and ip_forward never reach the host.
package network
