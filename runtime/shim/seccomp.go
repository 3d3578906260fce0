package shim

import "fmt"

// loadSeccomp installs the container's seccomp filter on the calling thread.
// Profiles other than unconfined are not compiled yet: refuse rather than
// run a workload that asked for confinement without it.
func loadSeccomp(profile string) error {
	switch profile {
	case "", "unconfined":
		return nil
	}
	return fmt.Errorf("seccomp profile %q: not supported yet", profile)
}
