package network

// udevmac.go: systemd-udevd gives a new veth a MAC of its own choosing.
//
// Debian 12, like most systemd hosts, ships 99-default.link with
// MACAddressPolicy=persistent, and udevd applies it to every interface the
// kernel named with a random address, veths included: a moment after the
// bridge plugin's ADD has recorded the host end's MAC in its result, udevd
// replaces it. Nothing breaks (the bridge learns the new address), but CNI
// CHECK compares the live MAC with the recorded one and fails, and an
// adopted pod would be recreated after every daemon restart. (The kubelet
// never runs CHECK; minikubelet does, to notice a network that is really
// broken.) So when CHECK fails only because a host-side interface of the
// result has another MAC now, the cached result is brought up to date and
// CHECK runs again: every other rule still applies.

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"

	"github.com/containernetworking/cni/libcni"
)

// The bridge plugin's message (plugins/main/bridge, validateCniVethInterface).
var macMismatch = regexp.MustCompile(`Interface (\S+) Mac doesn't match: (\S+) not found`)

// refreshHostMAC updates the MAC of the host-side interface named in a
// CHECK error in the network's cached result, when that interface exists
// on the host and the result lists it without a sandbox. It reports
// whether it changed the cache (and so whether CHECK is worth repeating).
func (m *Manager) refreshHostMAC(list *libcni.NetworkConfigList, rt *libcni.RuntimeConf, checkErr error) (bool, error) {
	sub := macMismatch.FindStringSubmatch(checkErr.Error())
	if sub == nil {
		return false, nil
	}
	name := sub[1]
	iface, err := net.InterfaceByName(name)
	if err != nil {
		return false, nil // gone: the CHECK failure stands
	}
	live := iface.HardwareAddr.String()
	path := filepath.Join(m.cfg.cacheDir(), "results", fmt.Sprintf("%s-%s-%s", list.Name, rt.ContainerID, rt.IfName))
	b, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	var cached map[string]json.RawMessage
	if err := json.Unmarshal(b, &cached); err != nil {
		return false, fmt.Errorf("CNI cache %s: %w", path, err)
	}
	var result map[string]json.RawMessage
	if err := json.Unmarshal(cached["result"], &result); err != nil {
		return false, fmt.Errorf("CNI cache %s: result: %w", path, err)
	}
	var ifaces []map[string]any
	if err := json.Unmarshal(result["interfaces"], &ifaces); err != nil {
		return false, fmt.Errorf("CNI cache %s: interfaces: %w", path, err)
	}
	changed := false
	for _, i := range ifaces {
		if i["name"] == name && (i["sandbox"] == nil || i["sandbox"] == "") && i["mac"] != live {
			i["mac"] = live
			changed = true
		}
	}
	if !changed {
		return false, nil
	}
	if result["interfaces"], err = json.Marshal(ifaces); err != nil {
		return false, err
	}
	if cached["result"], err = json.Marshal(result); err != nil {
		return false, err
	}
	out, err := json.Marshal(cached)
	if err != nil {
		return false, err
	}
	if err := writeFileSynced(path, out); err != nil {
		return false, fmt.Errorf("CNI cache %s: %w", path, err)
	}
	m.log.Info("host veth MAC changed since CNI ADD (udev's MACAddressPolicy); cached result updated",
		"interface", name, "was", sub[2], "now", live)
	return true, nil
}

// writeFileSynced replaces path by b: a temporary file, synced, renamed,
// and the directory synced, so a crash leaves the old or the new file.
func writeFileSynced(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
