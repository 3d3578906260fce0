package manifests

import (
	"os"
	"testing"
)

// Micro-benchmarks of the hot pure pieces (issue 8): parse+default+validate
// of a kubeadm etcd manifest, and the UID hash alone.

func BenchmarkParseKubeadmEtcd(b *testing.B) {
	data, err := os.ReadFile("testdata/etcd.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse("/etc/kubernetes/manifests/etcd.yaml", data, "node1"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStaticPodUID(b *testing.B) {
	pods, err := ReadFile("testdata/kube-apiserver.yaml", "node1")
	if err != nil {
		b.Fatal(err)
	}
	pod := pods[0].DeepCopy()
	pod.UID = ""
	for b.Loop() {
		StaticPodUID(pod, "node1", "/etc/kubernetes/manifests/kube-apiserver.yaml")
	}
}
