package main

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func parseRun(t *testing.T, args ...string) (daemonOptions, runExtraOptions) {
	t.Helper()
	var base daemonOptions
	var extra runExtraOptions
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	base.addFlags(fs)
	extra.addFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return base, extra
}

// The kubelet's defaults: the read-only port binds to 0.0.0.0, DNS is
// based on /etc/resolv.conf, cluster DNS is unset.
func TestRunDNSAndAddressFlags(t *testing.T) {
	base, extra := parseRun(t)
	d := extra.daemonOptions(&base)
	if d.Address != "0.0.0.0" || d.ReadOnlyPort != 0 || d.ResolvConf != "/etc/resolv.conf" || d.NoResolvConf || len(d.ClusterDNS) != 0 || d.ClusterDomain != "cluster.local" {
		t.Errorf("defaults: %+v", d)
	}
	base, extra = parseRun(t, "--read-only-port", "10255", "--address", "127.0.0.1", "--resolv-conf", "",
		"--cluster-dns", "10.96.0.10,10.96.0.11", "--cluster-domain", "example.internal")
	d = extra.daemonOptions(&base)
	if d.Address != "127.0.0.1" || d.ReadOnlyPort != 10255 || !d.NoResolvConf || strings.Join(d.ClusterDNS, ",") != "10.96.0.10,10.96.0.11" || d.ClusterDomain != "example.internal" {
		t.Errorf("set: %+v", d)
	}
	// run --help says what the read-only port exposes and where.
	cmd := newRunCmd()
	help := cmd.Long + cmd.Flags().Lookup("read-only-port").Usage + cmd.Flags().Lookup("address").Usage
	for _, want := range []string{"without authentication", "0.0.0.0", "every interface", "127.0.0.1"} {
		if !strings.Contains(help, want) {
			t.Errorf("run --help lacks %q", want)
		}
	}
}
