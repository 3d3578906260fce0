package main

import "fmt"

// The benchmark pod: a busybox httpd and a client polling it on localhost
// with wget, 64Mi / 500m each (Guaranteed). The workloads touch marker
// files in a hostPath folder mounted at $OUT: "web" and "client" as their
// first act (the workload has exec'd), "ok" after the first successful
// request. The same scripts run in the floor and under podman.
const (
	webScript    = `touch $OUT/web; exec httpd -f -p 8080 -h /var/www`
	clientScript = `touch $OUT/client; until wget -q -O /dev/null http://127.0.0.1:8080/; do sleep 0.005; done; touch $OUT/ok; exec sleep 1000000`
	memLimit     = "64Mi"
	cpuLimit     = "500m"
)

// podYAML is the manifest of pod name writing its markers into outDir.
func podYAML(name, outDir string) string {
	c := func(cname, script string) string {
		return fmt.Sprintf(`  - name: %s
    image: %s
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", %q]
    env:
    - {name: OUT, value: /out}
    - {name: BENCH_ID, value: %s}
    resources:
      limits: {memory: %s, cpu: %s}
    volumeMounts:
    - {name: out, mountPath: /out}
`, cname, demoRef, script, name+"/"+cname, memLimit, cpuLimit)
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: default
spec:
  terminationGracePeriodSeconds: 0
  restartPolicy: Always
  containers:
%s%s  volumes:
  - name: out
    hostPath: {path: %s, type: Directory}
`, name, c("web", webScript), c("client", clientScript), outDir)
}
