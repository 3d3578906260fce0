package kubectl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/minikubelet/minikubelet/internal/api"
)

// FormatError renders an error the way kubectl prints it:
// `Error from server (NotFound): pods "x" not found` for API errors,
// `error: ...` otherwise.
func FormatError(err error) string {
	var se *apierrors.StatusError
	if errors.As(err, &se) {
		reason := string(se.ErrStatus.Reason)
		if reason == "" {
			reason = "Unknown"
		}
		return fmt.Sprintf("Error from server (%s): %s", reason, se.ErrStatus.Message)
	}
	return "error: " + err.Error()
}

// ParsePodArgs accepts kubectl's ways to name pods: `pods`, `pods A B`,
// `pod/A pod/B` (also po, pod, pods as the type). It returns the names
// (none means "all").
func ParsePodArgs(args []string) ([]string, error) {
	isPodType := func(s string) bool { return s == "pod" || s == "pods" || s == "po" }
	if len(args) == 0 {
		return nil, errors.New(`you must specify the type of resource to get: only "pods" exists on this node`)
	}
	if isPodType(args[0]) {
		for _, a := range args[1:] {
			if strings.Contains(a, "/") {
				return nil, fmt.Errorf("there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'minikubelet get pod/%s')", a)
			}
		}
		return args[1:], nil
	}
	var names []string
	for _, a := range args {
		typ, name, ok := strings.Cut(a, "/")
		if !ok {
			return nil, fmt.Errorf(`the server doesn't have a resource type %q (this node serves only "pods")`, a)
		}
		if !isPodType(typ) {
			return nil, fmt.Errorf(`the server doesn't have a resource type %q (this node serves only "pods")`, typ)
		}
		if name == "" {
			return nil, fmt.Errorf("%s: resource name may not be empty", a)
		}
		names = append(names, name)
	}
	return names, nil
}

// GetOptions are `get pods` flags.
type GetOptions struct {
	Namespace     string // ignored with AllNamespaces
	AllNamespaces bool
	Output        string // "", wide, json, yaml, name, jsonpath=..., custom-columns=...
	Watch         bool
	LabelSelector string
	NoHeaders     bool
	Now           func() time.Time
}

// ValidateOutput rejects -o values get does not know, as kubectl does.
func ValidateOutput(o string) error {
	switch o {
	case "", "wide", "json", "yaml", "name":
		return nil
	}
	if tp, err := parseTemplateOutput(o); tp != nil || err != nil {
		return err
	}
	return fmt.Errorf("unable to match a printer suitable for the output format %q, allowed formats are: custom-columns,json,jsonpath,name,wide,yaml", o)
}

// Get runs `get pods [NAME...]`.
func Get(ctx context.Context, c *api.Client, o GetOptions, names []string, out, errOut io.Writer) error {
	if err := ValidateOutput(o.Output); err != nil {
		return err
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	ns := o.Namespace
	if o.AllNamespaces {
		ns = ""
	}
	if o.Watch {
		if len(names) > 1 {
			return errors.New("watch is only supported on individual resources and resource collections, but 2 resources were found")
		}
		name := ""
		if len(names) == 1 {
			name = names[0]
		}
		return watchGet(ctx, c, o, ns, name, out)
	}
	var pods []v1.Pod
	rv := ""
	if len(names) == 0 {
		list, err := c.ListPods(ctx, ns, o.LabelSelector)
		if err != nil {
			return err
		}
		pods, rv = list.Items, list.ResourceVersion
	} else {
		if o.AllNamespaces {
			return errors.New("a resource cannot be retrieved by name across all namespaces")
		}
		var firstErr error
		for _, n := range names {
			p, err := c.GetPod(ctx, ns, n)
			if err != nil {
				// kubectl prints what it found and reports the rest.
				fmt.Fprintln(errOut, FormatError(err))
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
			pods = append(pods, *p)
		}
		if firstErr != nil && len(pods) == 0 {
			return &ReportedError{Err: firstErr}
		}
		if err := printPods(out, errOut, pods, rv, o, ns, len(names) == 1); err != nil {
			return err
		}
		if firstErr != nil {
			return &ReportedError{Err: firstErr}
		}
		return nil
	}
	return printPods(out, errOut, pods, rv, o, ns, false)
}

// ReportedError is an error already printed to the user; the command only
// exits non-zero.
type ReportedError struct{ Err error }

func (e *ReportedError) Error() string { return e.Err.Error() }
func (e *ReportedError) Unwrap() error { return e.Err }

func printPods(out, errOut io.Writer, pods []v1.Pod, rv string, o GetOptions, ns string, single bool) error {
	if tp, err := parseTemplateOutput(o.Output); err != nil {
		return err
	} else if tp != nil && tp.jsonPath != nil {
		var obj any = PodList(pods, rv)
		if single && len(pods) == 1 {
			obj = &PodList(pods, "").Items[0]
		}
		return tp.printJSONPath(out, obj)
	} else if tp != nil && len(pods) > 0 {
		return tp.printColumns(out, pods, o.NoHeaders)
	}
	switch o.Output {
	case "json", "yaml":
		var obj any = PodList(pods, rv)
		if single && len(pods) == 1 {
			obj = &PodList(pods, "").Items[0]
		}
		if o.Output == "json" {
			return PrintJSON(out, obj)
		}
		return PrintYAML(out, obj)
	case "name":
		for i := range pods {
			if err := PrintName(out, &pods[i]); err != nil {
				return err
			}
		}
		return nil
	}
	if len(pods) == 0 {
		if ns == "" {
			fmt.Fprintln(errOut, "No resources found")
		} else {
			fmt.Fprintf(errOut, "No resources found in %s namespace.\n", ns)
		}
		return nil
	}
	return PrintTable(out, pods, TableOptions{Wide: o.Output == "wide", WithNamespace: o.AllNamespaces, NoHeaders: o.NoHeaders, Now: o.Now()})
}

// watchGet prints the current pods, then one line (or object) per change,
// until ctx ends.
func watchGet(ctx context.Context, c *api.Client, o GetOptions, ns, name string, out io.Writer) error {
	w, err := c.WatchPods(ctx, ns, name, o.LabelSelector)
	if err != nil {
		return err
	}
	topts := TableOptions{Wide: o.Output == "wide", WithNamespace: o.AllNamespaces, NoHeaders: o.NoHeaders}
	header := !o.NoHeaders
	tp, err := parseTemplateOutput(o.Output)
	if err != nil {
		return err
	}
	for ev := range w.Events {
		p := ev.Pod
		switch {
		case tp != nil && tp.jsonPath != nil:
			pod := p.DeepCopy()
			pod.Kind, pod.APIVersion = "Pod", "v1"
			err = tp.printJSONPath(out, pod)
		case tp != nil:
			err = tp.printColumns(out, []v1.Pod{*p}, !header)
			header = false
		default:
			err = printWatchEvent(out, p, o, &topts, &header)
		}
		if err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return w.Err()
}

// Describe runs `describe pod [NAME...]` (no name: every pod of the namespace).
func DescribePods(ctx context.Context, c *api.Client, namespace string, names []string, now func() time.Time, out io.Writer) error {
	if now == nil {
		now = time.Now
	}
	var pods []v1.Pod
	if len(names) == 0 {
		list, err := c.ListPods(ctx, namespace, "")
		if err != nil {
			return err
		}
		if len(list.Items) == 0 {
			return fmt.Errorf("no resources found in %s namespace", namespace)
		}
		pods = list.Items
	} else {
		for _, n := range names {
			p, err := c.GetPod(ctx, namespace, n)
			if err != nil {
				return err
			}
			pods = append(pods, *p)
		}
	}
	events, err := c.ListEvents(ctx, namespace)
	if err != nil {
		return err
	}
	for i := range pods {
		p := &pods[i]
		if i > 0 {
			fmt.Fprintln(out)
			fmt.Fprintln(out)
		}
		extra, err := c.PodExtra(ctx, p.Namespace, p.Name)
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		if err := Describe(out, p, extra, PodEvents(events.Items, p), now()); err != nil {
			return err
		}
	}
	return nil
}

// ErrWaitTimeout is returned by Wait when the condition was not met in time.
type ErrWaitTimeout struct{ Name string }

func (e *ErrWaitTimeout) Error() string {
	return "timed out waiting for the condition on pods/" + e.Name
}

// Wait blocks until cond holds for pod name, printing kubectl's
// "pod/NAME condition met". A timeout of 0 checks once; a negative one waits
// a week (kubectl's rules). While the daemon is unreachable (starting,
// restarting) it retries until the deadline; a pod that does not exist yet
// is waited for (static pods appear shortly after their file).
func Wait(ctx context.Context, c *api.Client, namespace, name string, cond WaitFor, timeout time.Duration, out, errOut io.Writer) error {
	if timeout < 0 {
		timeout = 7 * 24 * time.Hour
	}
	deadline := time.Now().Add(timeout)
	shown := name
	var lastErr error
	// One check first with its own short deadline, so --timeout=0 (check
	// once) still asks the daemon.
	gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	p, err := c.GetPod(gctx, namespace, name)
	cancel()
	switch {
	case err == nil:
		shown = p.Name
		if cond.Met(p) {
			fmt.Fprintf(out, "pod/%s condition met\n", shown)
			return nil
		}
	case apierrors.IsNotFound(err):
		if cond.Met(nil) {
			fmt.Fprintf(out, "pod/%s condition met\n", shown)
			return nil
		}
	default:
		lastErr = err
	}
	for {
		met, seen, err := waitOnce(ctx, c, namespace, name, cond, deadline)
		if seen != "" {
			shown = seen
		}
		if met {
			fmt.Fprintf(out, "pod/%s condition met\n", shown)
			return nil
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			lastErr = err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !time.Now().Before(deadline) {
			if lastErr != nil && errors.Is(lastErr, api.ErrUnreachable) {
				fmt.Fprintln(errOut, FormatError(lastErr))
			}
			return &ErrWaitTimeout{Name: shown}
		}
		// The watch broke (daemon restart): re-list shortly.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(500*time.Millisecond, time.Until(deadline))):
		}
	}
}

// waitOnce opens one watch and evaluates cond on the pod's current state
// and each change until met, the deadline or the end of the watch.
func waitOnce(ctx context.Context, c *api.Client, namespace, name string, cond WaitFor, deadline time.Time) (met bool, seen string, err error) {
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	w, err := c.WatchPods(wctx, namespace, name, "")
	if err != nil {
		return false, "", err
	}
	// The watch sends current state as ADDED; absence needs a GET.
	p, err := c.GetPod(wctx, namespace, name)
	switch {
	case err == nil:
		seen = p.Name
		if cond.Met(p) {
			return true, seen, nil
		}
	case apierrors.IsNotFound(err):
		if cond.Met(nil) {
			return true, seen, nil
		}
	default:
		return false, seen, err
	}
	for ev := range w.Events {
		seen = ev.Pod.Name
		pod := ev.Pod
		if ev.Type == watch.Deleted {
			pod = nil
		}
		if cond.Met(pod) {
			return true, seen, nil
		}
	}
	return false, seen, w.Err()
}

// printWatchEvent prints one changed pod of `get -w` in the built-in formats.
func printWatchEvent(out io.Writer, p *v1.Pod, o GetOptions, topts *TableOptions, header *bool) (err error) {
	switch o.Output {
	case "json":
		err = PrintJSON(out, p)
	case "yaml":
		if _, err = io.WriteString(out, "---\n"); err == nil {
			err = PrintYAML(out, p)
		}
	case "name":
		err = PrintName(out, p)
	default:
		// One row per event, each flushed at once; widths are kubectl's
		// minimums so consecutive rows line up in the common case.
		topts.Now = o.Now()
		tw := NewTableWriter(out)
		if *header {
			fmt.Fprintln(tw, strings.Join(TableHeader(*topts), "\t"))
			*header = false
		}
		fmt.Fprintln(tw, strings.Join(TableRow(p, *topts), "\t"))
		err = tw.Flush()
	}
	return err
}
