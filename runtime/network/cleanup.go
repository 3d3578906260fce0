package network

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Why this file exists: the bridge plugin shipped by Debian 12
// (containernetworking-plugins 1.1.1) removes its per-pod masquerade chain on
// DEL only when it can enter the pod's netns and read the address off eth0.
// After a crash the netns is often gone (or unknown), and DEL then releases
// the IP but leaves "CNI-<hash>" in the nat table forever. So after a DEL
// without a usable netns we remove that chain ourselves. The chain name is
// the plugins' utils.FormatChainName: "CNI-" + the first 24 hex digits of
// sha512(network name + container ID); deleting a chain that does not
// exist is a no-op, so this is safe to run after a DEL that did clean up.

// masqChainName is the chain the bridge/ptp plugins create for ipMasq.
func masqChainName(network, containerID string) string {
	sum := sha512.Sum512([]byte(network + containerID))
	return fmt.Sprintf("CNI-%x", sum)[:28]
}

// portmapDNATChain is the portmap plugin's per-pod DNAT chain name
// ("CNI-DN-" + hash, cut to iptables' 28 characters).
func portmapDNATChain(network, containerID string) string {
	sum := sha512.Sum512([]byte(network + containerID))
	return fmt.Sprintf("CNI-DN-%x", sum)[:28]
}

// natChainExists reports whether bin (iptables/ip6tables) has chain in nat.
func natChainExists(ctx context.Context, bin, chain string) bool {
	path, err := exec.LookPath(bin)
	if err != nil {
		return false
	}
	return exec.CommandContext(ctx, path, "-w", "-t", "nat", "-S", chain).Run() == nil
}

// removeNatChain deletes every rule of nat/POSTROUTING that jumps to chain,
// then flushes and deletes the chain, with iptables and ip6tables (those
// present). A missing chain is not an error.
func removeNatChain(ctx context.Context, chain string) error {
	var errs []error
	for _, bin := range []string{"iptables", "ip6tables"} {
		path, err := exec.LookPath(bin)
		if err != nil {
			continue
		}
		if err := removeNatChainWith(ctx, path, chain); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", bin, err))
		}
	}
	return errors.Join(errs...)
}

func removeNatChainWith(ctx context.Context, bin, chain string) error {
	run := func(args ...string) ([]byte, error) {
		return iptables(ctx, bin, append([]string{"-t", "nat"}, args...)...)
	}
	if _, err := run("-S", chain); err != nil {
		return nil // no such chain: nothing to do
	}
	// Delete jumps by rule number, highest first so numbers stay valid.
	out, err := run("-L", "POSTROUTING", "-n", "--line-numbers")
	if err != nil {
		return err
	}
	var nums []int
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[1] == chain {
			if n, err := strconv.Atoi(f[0]); err == nil {
				nums = append(nums, n)
			}
		}
	}
	for i := len(nums) - 1; i >= 0; i-- {
		if _, err := run("-D", "POSTROUTING", strconv.Itoa(nums[i])); err != nil {
			return err
		}
	}
	if _, err := run("-F", chain); err != nil {
		return err
	}
	_, err = run("-X", chain)
	return err
}

// iptables runs bin (iptables, ip6tables) with -w, which waits for the
// xtables lock other writers (the plugins) hold; the error names the
// command and carries its stderr.
func iptables(ctx context.Context, bin string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, bin, append([]string{"-w"}, args...)...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%s %s: %v: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out.Bytes(), nil
}

// deleteHostVeth removes the node-side end of a pod's veth pair by name,
// but only if it still is a veth enslaved to bridge (names are random, yet a
// later pod could in theory reuse one: never delete anything else). Deleting
// one end removes the pair. A missing link is not an error.
func deleteHostVeth(name, bridge string) error {
	links, err := listLinks()
	if err != nil {
		return err
	}
	var master int32 = -1
	for _, l := range links {
		if l.name == bridge {
			master = l.index
		}
	}
	for _, l := range links {
		if l.name != name {
			continue
		}
		if l.kind != "veth" || (bridge != "" && l.master != master) {
			return nil
		}
		return deleteLink(l.index)
	}
	return nil
}

type linkInfo struct {
	index  int32
	name   string
	kind   string
	master int32
}

// listLinks dumps the links of the caller's netns over rtnetlink.
func listLinks() ([]linkInfo, error) {
	rib, err := syscall.NetlinkRIB(syscall.RTM_GETLINK, syscall.AF_UNSPEC)
	if err != nil {
		return nil, fmt.Errorf("rtnetlink dump links: %w", err)
	}
	msgs, err := parseNetlink(rib)
	if err != nil {
		return nil, err
	}
	var out []linkInfo
	for _, m := range msgs {
		if m.typ != unix.RTM_NEWLINK || len(m.data) < unix.SizeofIfInfomsg {
			continue
		}
		ifi := (*unix.IfInfomsg)(unsafe.Pointer(&m.data[0]))
		l := linkInfo{index: ifi.Index, master: -2}
		for _, a := range parseAttrs(m.data[unix.SizeofIfInfomsg:]) {
			switch a.typ {
			case unix.IFLA_IFNAME:
				l.name = string(bytes.TrimRight(a.val, "\x00"))
			case unix.IFLA_MASTER:
				if len(a.val) >= 4 {
					l.master = int32(binary.NativeEndian.Uint32(a.val))
				}
			case unix.IFLA_LINKINFO:
				for _, n := range parseAttrs(a.val) {
					if n.typ == unix.IFLA_INFO_KIND {
						l.kind = string(bytes.TrimRight(n.val, "\x00"))
					}
				}
			}
		}
		out = append(out, l)
	}
	return out, nil
}

// deleteLink sends RTM_DELLINK for index and waits for the kernel's ack.
func deleteLink(index int32) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("rtnetlink socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("rtnetlink bind: %w", err)
	}
	msg := make([]byte, unix.SizeofNlMsghdr+unix.SizeofIfInfomsg)
	hdr := (*unix.NlMsghdr)(unsafe.Pointer(&msg[0]))
	hdr.Len = uint32(len(msg))
	hdr.Type = unix.RTM_DELLINK
	hdr.Flags = unix.NLM_F_REQUEST | unix.NLM_F_ACK
	hdr.Seq = 1
	ifi := (*unix.IfInfomsg)(unsafe.Pointer(&msg[unix.SizeofNlMsghdr]))
	ifi.Family = unix.AF_UNSPEC
	ifi.Index = index
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("rtnetlink delete link %d: %w", index, err)
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return fmt.Errorf("rtnetlink delete link %d: %w", index, err)
	}
	msgs, err := parseNetlink(buf[:n])
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if m.typ == unix.NLMSG_ERROR && len(m.data) >= 4 {
			if code := int32(binary.NativeEndian.Uint32(m.data)); code != 0 {
				if unix.Errno(-code) == unix.ENODEV {
					return nil
				}
				return fmt.Errorf("rtnetlink delete link %d: %w", index, unix.Errno(-code))
			}
		}
	}
	return nil
}

type nlMsg struct {
	typ  uint16
	data []byte
}

func parseNetlink(b []byte) ([]nlMsg, error) {
	var out []nlMsg
	for len(b) >= unix.SizeofNlMsghdr {
		h := (*unix.NlMsghdr)(unsafe.Pointer(&b[0]))
		l := int(h.Len)
		if l < unix.SizeofNlMsghdr || l > len(b) {
			return nil, errors.New("rtnetlink: malformed message")
		}
		out = append(out, nlMsg{typ: h.Type, data: b[unix.SizeofNlMsghdr:l]})
		next := nlAlign(l)
		if next > len(b) {
			next = len(b)
		}
		b = b[next:]
	}
	return out, nil
}

type nlAttr struct {
	typ uint16
	val []byte
}

func parseAttrs(b []byte) []nlAttr {
	var out []nlAttr
	for len(b) >= unix.SizeofRtAttr {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		t := binary.NativeEndian.Uint16(b[2:4]) &^ unix.NLA_F_NESTED
		if l < unix.SizeofRtAttr || l > len(b) {
			break
		}
		out = append(out, nlAttr{typ: t, val: b[unix.SizeofRtAttr:l]})
		al := nlAlign(l)
		if al > len(b) {
			break
		}
		b = b[al:]
	}
	return out
}

func nlAlign(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }
