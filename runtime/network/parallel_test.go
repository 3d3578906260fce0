package network

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minikubelet/minikubelet/runtime/network/nettest"
)

// TestParallelChurnLeavesNoTrace: the manager is called for many pods at
// once, ADDs beside DELs, with hostPorts, and with DELs that find no netns
// (with per-pod rules the bridge plugin then leaves its masquerade chain and
// Teardown deletes its POSTROUTING jump by rule number). Every call
// succeeds, every pod gets its own IP, and nothing is left: two pods'
// iptables edits at once fail under iptables-nft ("Index of deletion too
// big", "CHAIN_DEL ... busy"), which the manager's node lock prevents (it
// was the shell's until 2026-12-03). Run with the default network (node
// rules; only hostPorts edit iptables per pod) and with a config of
// per-pod rules.
func TestParallelChurnLeavesNoTrace(t *testing.T) {
	requireCNI(t)
	t.Run("default", func(t *testing.T) { parallelChurn(t, false) })
	t.Run("per-pod rules", func(t *testing.T) { parallelChurn(t, true) })
}

func parallelChurn(t *testing.T, perPodRules bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	n := newTestNode(t)
	if perPodRules {
		usePerPodRulesConflist(t, n)
	}
	m := n.manager(t)
	const N = 24
	pod := func(i int) PodNetwork {
		p := PodNetwork{UID: fmt.Sprintf("uid-c%d", i), Namespace: "default", Name: fmt.Sprintf("c%d-node1", i), NetnsPath: nettest.NewNetns(t)}
		if i%3 == 0 {
			p.PortMappings = []HostPort{{HostPort: int32(19000 + i), ContainerPort: 8080, Protocol: "TCP"}}
		}
		return p
	}
	var mu sync.Mutex
	ips := map[string]net.IP{}
	parallel := func(what string, pods []PodNetwork, fn func(PodNetwork) error) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, len(pods))
		for _, p := range pods {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := fn(p); err != nil {
					errs <- fmt.Errorf("%s %s: %w", what, p.UID, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
	setup := func(p PodNetwork) error {
		r, err := m.Setup(ctx, p)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for uid, ip := range ips {
			if ip.Equal(r.IPs[0]) {
				return fmt.Errorf("got %s, already %s's", ip, uid)
			}
		}
		ips[p.UID] = r.IPs[0]
		return nil
	}
	teardown := func(p PodNetwork) error {
		if strings.HasSuffix(p.UID, "1") || strings.HasSuffix(p.UID, "4") {
			p.NetnsPath = "" // unknown after a crash: our own cleanup runs
		}
		if err := m.Teardown(ctx, p); err != nil {
			return err
		}
		mu.Lock()
		delete(ips, p.UID)
		mu.Unlock()
		return nil
	}
	var first, second []PodNetwork
	for i := 0; i < N; i++ {
		if i < N/2 {
			first = append(first, pod(i))
		} else {
			second = append(second, pod(i))
		}
	}
	start := time.Now()
	parallel("Setup", first, setup)
	// Half of the first pods go while the second half arrives.
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); parallel("Teardown", first[:N/4], teardown) }()
	go func() { defer wg.Done(); parallel("Setup", second, setup) }()
	wg.Wait()
	parallel("Teardown", append(first[N/4:], second...), teardown)
	t.Logf("%d pods set up and torn down at once in %s", N, time.Since(start).Round(time.Millisecond))
	if t.Failed() {
		return
	}
	for _, p := range append(first, second...) {
		assertNoTrace(t, n, m, p.UID, net.ParseIP("192.0.2.255")) // every IPAM file and veth is checked; no pod had this IP
	}
	for _, line := range strings.Split(iptablesSave(t), "\n") {
		if strings.Contains(line, "CNI-") && strings.HasPrefix(line, "-A") && !strings.Contains(line, "-j CNI-HOSTPORT") &&
			!strings.HasPrefix(line, "-A CNI-HOSTPORT") && !strings.Contains(line, "-j CNI-FORWARD") && !strings.Contains(line, "-j CNI-ADMIN") {
			t.Errorf("iptables rule left after every pod is gone: %s", line)
		}
	}
}
