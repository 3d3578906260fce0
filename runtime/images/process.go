package images

import (
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// ResolveProcess merges an image config into a container as Kubernetes does:
//
//   - command replaces the image Entrypoint and drops its Cmd; args replace Cmd;
//   - env is the image Env, then the container's env (the container wins per
//     name, keeping the image's position; new names are appended). Only entries
//     with a literal value are taken: the caller resolves valueFrom and
//     $(VAR) references and fills Value in first;
//   - workdir is the container's workingDir, else the image's, else "/";
//   - user is runAsUser[:runAsGroup] when the container's securityContext sets
//     runAsUser (merge the pod-level securityContext in before calling), else
//     the image's User (may be a name, resolved inside the root by the caller).
//
// An error when there is nothing to run.
func ResolveProcess(cfg ImageConfig, c *corev1.Container) (argv []string, env []string, workdir string, user string, err error) {
	switch {
	case len(c.Command) > 0:
		argv = append(append([]string{}, c.Command...), c.Args...)
	case len(c.Args) > 0:
		argv = append(append([]string{}, cfg.Entrypoint...), c.Args...)
	default:
		argv = append(append([]string{}, cfg.Entrypoint...), cfg.Cmd...)
	}
	if len(argv) == 0 {
		return nil, nil, "", "", fmt.Errorf("container %q: no command specified: set command or use an image with an Entrypoint or Cmd", c.Name)
	}

	env = append([]string{}, cfg.Env...)
	index := map[string]int{}
	for i, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		index[k] = i
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.Value == "" {
			continue
		}
		kv := e.Name + "=" + e.Value
		if i, ok := index[e.Name]; ok {
			env[i] = kv
			continue
		}
		index[e.Name] = len(env)
		env = append(env, kv)
	}

	workdir = c.WorkingDir
	if workdir == "" {
		workdir = cfg.WorkingDir
	}
	if workdir == "" {
		workdir = "/"
	}

	user = cfg.User
	if sc := c.SecurityContext; sc != nil && sc.RunAsUser != nil {
		user = strconv.FormatInt(*sc.RunAsUser, 10)
		if sc.RunAsGroup != nil {
			user += ":" + strconv.FormatInt(*sc.RunAsGroup, 10)
		}
	}
	return argv, env, workdir, user, nil
}
