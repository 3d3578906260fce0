// Command pause is a static stand-in for registry.k8s.io/pause, built into
// the image hack/k8s/images.sh makes for kubeadm's image list: it sleeps
// until SIGTERM or SIGINT and exits 0, reaping any child it inherits, as the
// upstream pause does. (minikubelet itself does not need it: its sandbox is
// minikubelet-shim; the image is there because kubeadm names it.)
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		os.Stdout.WriteString("pause (minikubelet hack/pause)\n")
		return
	}
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sig {
		if s == syscall.SIGCHLD {
			for {
				var ws syscall.WaitStatus
				if pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 || err != nil {
					break
				}
			}
			continue
		}
		os.Exit(0)
	}
}
