package main

import (
	"strings"
	"testing"
	"time"
)

func TestVMLabelSaysEmulatedUnderTCG(t *testing.T) {
	if got := vmLabel("qemu\n"); got != "emulated (TCG) guest: compare ratios only" {
		t.Errorf("qemu: %q", got)
	}
	for _, v := range []string{"kvm", "none", "", "vmware"} {
		if got := vmLabel(v); strings.Contains(got, "TCG") || !strings.HasSuffix(got, "compare ratios only") {
			t.Errorf("%q: %q", v, got)
		}
	}
}

func TestVMTimeoutAndBudget(t *testing.T) {
	for env, want := range map[string]time.Duration{"": 900 * time.Second, "x": 900 * time.Second, "0": 900 * time.Second, " 1200\n": 1200 * time.Second} {
		if got := vmTimeout(env); got != want {
			t.Errorf("vmTimeout(%q) = %v, want %v", env, got, want)
		}
	}
	if got := vmBudget(15 * time.Minute); got != 11*time.Minute {
		t.Errorf("budget of 15 min = %v", got)
	}
	if got := vmBudget(2 * time.Minute); got != 3*time.Minute {
		t.Errorf("budget of 2 min = %v, want the 3 min floor", got)
	}
}

func TestGuestLineIsVMShsLast(t *testing.T) {
	stderr := "bench: booting\nvm.sh: guest: old\nbench: pod start runs 0/10\nvm.sh: guest: Debian GNU/Linux 12, kernel 6.1, TCG (no /dev/kvm)\n"
	if got := guestLine(stderr); got != "Debian GNU/Linux 12, kernel 6.1, TCG (no /dev/kvm)" {
		t.Errorf("guestLine = %q", got)
	}
	if got := guestLine("vm.sh: timed out\n"); got != "" {
		t.Errorf("no guest line: %q", got)
	}
}

func TestRatioTable(t *testing.T) {
	ms := time.Millisecond
	b := &bench{starts: map[string][]startSample{
		cMKL:    {{exec: 200 * ms, first: 300 * ms, gone: 1000 * ms}, {exec: 400 * ms, first: 500 * ms, gone: 1200 * ms}, {exec: 300 * ms, first: 400 * ms, gone: 1100 * ms}},
		cFloor:  {{exec: 100 * ms, first: 150 * ms}, {exec: 100 * ms, first: 250 * ms}, {exec: 100 * ms, first: 200 * ms}},
		cMKLCNI: {{exec: 600 * ms, first: 800 * ms, gone: 2200 * ms}},
	}, massUp: map[int]time.Duration{30: 3 * time.Second}, massDown: map[int]time.Duration{30: 6600 * ms}}
	md := b.ratioTable().markdown()
	for _, want := range []string{
		"| minikubelet ÷ floor (1 ÷ 2) | (a) rename → both workloads exec'd | 3 / 3 | 3.00× | 3.00× |",
		"| minikubelet ÷ floor (1 ÷ 2) | (b) rename → client's first successful request | 3 / 3 | 2.00× | 2.00× |",
		"| CNI bridge ÷ loopback, minikubelet (1b ÷ 1) | (a) rename → both workloads exec'd | 1 / 3 | 2.00× | 3.00× |",
		"| CNI bridge ÷ loopback, minikubelet (1b ÷ 1) | (c) delete → all gone | 1 / 3 | 2.00× | 2.20× |",
		// 3 s / 30 = 100 ms per pod, over one pod's 300 ms.
		"| mass start per pod ÷ one pod's start (4 ÷ 1a) | 30 pods: all Running ÷ 30 | 1 / 3 | 0.33× |  |",
		// 6.6 s / 30 = 220 ms per pod, over one pod's 1100 ms.
		"| mass stop per pod ÷ one pod's delete (4 ÷ 1c) | 30 pods: all gone ÷ 30 | 1 / 3 | 0.20× |  |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("missing %q in:\n%s", want, md)
		}
	}
	empty := (&bench{starts: map[string][]startSample{}}).ratioTable().markdown()
	if !strings.Contains(empty, "| – | – |") || !strings.Contains(empty, "no mass start finished") {
		t.Errorf("without samples:\n%s", empty)
	}
}

func TestRatiosFirst(t *testing.T) {
	ratios := "### " + ratioTitle + " — *x*\n\n| a |\n- note\n\n"
	body := "### 1. Start\n\n| a |\n\n### 6b. Adoption\n\n" + ratios + "**The guest run ended early: timeout**\n\n"
	want := ratios + "### 1. Start\n\n| a |\n\n### 6b. Adoption\n\n**The guest run ended early: timeout**\n\n"
	if got := ratiosFirst(body); got != want {
		t.Errorf("ratiosFirst:\n%s\nwant:\n%s", got, want)
	}
	if got := ratiosFirst("### 1. Start\n"); got != "### 1. Start\n" {
		t.Errorf("without a ratio table: %q", got)
	}
}
