// Package kubectl prints pods the way kubectl does: the get table (and its
// wide, name, json and yaml forms), describe, and evaluates wait conditions.
// Output shapes follow kubectl (k8s.io/kubectl printers and describers) so
// scripts written against kubectl keep working; the code is ours.
package kubectl

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/yaml"

	"github.com/minikubelet/minikubelet/reconciler"
)

// StatusFunc computes kubectl's READY, STATUS and RESTARTS cells of a pod at now.
type StatusFunc func(pod *v1.Pod, now time.Time) (ready, status, restarts string)

// TableOptions shape the get table.
type TableOptions struct {
	Wide          bool // adds IP, NODE, QOS
	WithNamespace bool // -A: NAMESPACE first
	NoHeaders     bool
	Now           time.Time
	// Status computes READY/STATUS/RESTARTS; nil means the reconciler's
	// KubectlStatusAt (kubectl's printPod), the one the daemon reasons with.
	Status StatusFunc
}

// NewTableWriter is kubectl's table tabwriter (minwidth 10, padding 3).
func NewTableWriter(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 10, 4, 3, ' ', 0)
}

// TableHeader is the get header line's cells.
func TableHeader(o TableOptions) []string {
	h := []string{"NAME", "READY", "STATUS", "RESTARTS", "AGE"}
	if o.WithNamespace {
		h = append([]string{"NAMESPACE"}, h...)
	}
	if o.Wide {
		h = append(h, "IP", "NODE", "QOS")
	}
	return h
}

// TableRow is one pod's cells.
func TableRow(p *v1.Pod, o TableOptions) []string {
	status := o.Status
	if status == nil {
		status = reconciler.KubectlStatusAt
	}
	ready, phase, restarts := status(p, o.Now)
	row := []string{p.Name, ready, phase, restarts, Age(p.CreationTimestamp, o.Now)}
	if o.WithNamespace {
		row = append([]string{p.Namespace}, row...)
	}
	if o.Wide {
		row = append(row, orNone(p.Status.PodIP), orNone(p.Spec.NodeName), orNone(string(p.Status.QOSClass)))
	}
	return row
}

// PrintTable writes the header (unless NoHeaders) and one row per pod.
func PrintTable(w io.Writer, pods []v1.Pod, o TableOptions) error {
	tw := NewTableWriter(w)
	if !o.NoHeaders {
		fmt.Fprintln(tw, strings.Join(TableHeader(o), "\t"))
	}
	for i := range pods {
		fmt.Fprintln(tw, strings.Join(TableRow(&pods[i], o), "\t"))
	}
	return tw.Flush()
}

// Age is kubectl's AGE cell: a human duration since t, "<unknown>" when unset.
func Age(t metav1.Time, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// PrintName writes pod/<name>, as -o name.
func PrintName(w io.Writer, p *v1.Pod) error {
	_, err := fmt.Fprintf(w, "pod/%s\n", p.Name)
	return err
}

// PrintJSON writes obj as kubectl -o json does: keys sorted (kubectl prints
// through unstructured maps), 4-space indent, trailing newline.
func PrintJSON(w io.Writer, obj any) error {
	generic, err := toGeneric(obj)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(generic, "", "    ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// PrintYAML writes obj as kubectl -o yaml does.
func PrintYAML(w io.Writer, obj any) error {
	b, err := yaml.Marshal(obj)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

func toGeneric(obj any) (any, error) {
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var g any
	if err := json.Unmarshal(b, &g); err != nil {
		return nil, err
	}
	return g, nil
}

// PodList wraps pods into the v1 PodList -o json/yaml prints, each item with
// its kind and apiVersion.
func PodList(pods []v1.Pod, resourceVersion string) *v1.PodList {
	l := &v1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}, Items: make([]v1.Pod, len(pods))}
	l.ResourceVersion = resourceVersion
	for i := range pods {
		l.Items[i] = pods[i]
		l.Items[i].TypeMeta = metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"}
	}
	return l
}
