package kubectl

// template.go: -o jsonpath=... and -o custom-columns=..., evaluated with
// client-go's jsonpath (the package kubectl's printers use) on the JSON form
// of the objects, as kubectl evaluates them on unstructured content.

import (
	"bytes"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/util/jsonpath"
)

// templatePrinter prints pods with a jsonpath template or custom columns.
type templatePrinter struct {
	jsonPath *jsonpath.JSONPath // -o jsonpath=
	headers  []string           // -o custom-columns=
	columns  []*jsonpath.JSONPath
}

// parseTemplateOutput parses the -o value; (nil, nil) when it is neither
// jsonpath nor custom-columns.
func parseTemplateOutput(output string) (*templatePrinter, error) {
	kind, arg, _ := strings.Cut(output, "=")
	switch kind {
	case "jsonpath":
		if arg == "" {
			return nil, fmt.Errorf("template format specified but no template given")
		}
		j := jsonpath.New("out").AllowMissingKeys(true)
		if err := j.Parse(arg); err != nil {
			return nil, fmt.Errorf("error parsing jsonpath %s, %v", arg, err)
		}
		return &templatePrinter{jsonPath: j}, nil
	case "custom-columns":
		if arg == "" {
			return nil, fmt.Errorf("custom-columns format specified but no custom columns given")
		}
		p := &templatePrinter{}
		for i, col := range strings.Split(arg, ",") {
			header, expr, ok := strings.Cut(col, ":")
			if !ok {
				return nil, fmt.Errorf("unexpected custom-columns spec: %s, expected <header>:<json-path-expr>", col)
			}
			relaxed, err := relaxedJSONPath(expr)
			if err != nil {
				return nil, err
			}
			j := jsonpath.New(fmt.Sprintf("column%d", i)).AllowMissingKeys(true)
			if err := j.Parse(relaxed); err != nil {
				return nil, fmt.Errorf("error parsing jsonpath %s, %v", relaxed, err)
			}
			p.headers = append(p.headers, header)
			p.columns = append(p.columns, j)
		}
		return p, nil
	}
	return nil, nil
}

var relaxedJSONPathRE = regexp.MustCompile(`^\{\.?([^{}]+)\}$|^\.?([^{}]+)$`)

// relaxedJSONPath accepts a.b, .a.b, {a.b} and {.a.b}, as kubectl's
// custom columns do.
func relaxedJSONPath(expr string) (string, error) {
	if expr == "" {
		return "", nil
	}
	m := relaxedJSONPathRE.FindStringSubmatch(expr)
	if m == nil {
		return "", fmt.Errorf("unexpected path string, expected a 'name1.name2' or '.name1.name2' or '{name1.name2}' or '{.name1.name2}'")
	}
	field := m[1]
	if field == "" {
		field = m[2]
	}
	return "{." + field + "}", nil
}

// printJSONPath executes the template on obj (a Pod or a PodList) as JSON.
func (p *templatePrinter) printJSONPath(w io.Writer, obj any) error {
	data, err := toGeneric(obj)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := p.jsonPath.Execute(&buf, data); err != nil {
		return fmt.Errorf("error executing jsonpath: %v", err)
	}
	_, err = w.Write(buf.Bytes())
	return err
}

// printColumns writes the header (unless noHeaders) and one row per pod.
func (p *templatePrinter) printColumns(w io.Writer, pods []v1.Pod, noHeaders bool) error {
	tw := NewTableWriter(w)
	if !noHeaders {
		fmt.Fprintln(tw, strings.Join(p.headers, "\t"))
	}
	for i := range pods {
		row, err := p.columnRow(&pods[i])
		if err != nil {
			return err
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

func (p *templatePrinter) columnRow(pod *v1.Pod) ([]string, error) {
	pod = pod.DeepCopy()
	pod.Kind, pod.APIVersion = "Pod", "v1"
	data, err := toGeneric(pod)
	if err != nil {
		return nil, err
	}
	row := make([]string, len(p.columns))
	for i, j := range p.columns {
		results, err := j.FindResults(data)
		if err != nil {
			return nil, err
		}
		var vals []string
		for _, r := range results {
			for _, v := range r {
				vals = append(vals, valueText(v))
			}
		}
		if len(vals) == 0 {
			vals = []string{"<none>"}
		}
		row[i] = strings.Join(vals, ",")
	}
	return row, nil
}

func valueText(v reflect.Value) string {
	for v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return "<nil>"
		}
		v = v.Elem()
	}
	return fmt.Sprintf("%v", v.Interface())
}
