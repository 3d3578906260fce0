// Command testsummary reads `go test -json` on stdin, prints the output of
// failed tests and the reason of every skipped one, and closes with
// "N passed, N failed, N skipped". It exits 1 when anything failed.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

func main() {
	out := map[string]*strings.Builder{}
	var passed, failed, skipped int
	var skips, failures []string
	buildFailed := map[string]bool{}
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil {
			fmt.Println(string(line)) // build errors come as plain text
			continue
		}
		key := e.Package + " " + e.Test
		switch e.Action {
		case "output":
			if out[key] == nil {
				out[key] = &strings.Builder{}
			}
			out[key].WriteString(e.Output)
			if e.Test == "" && (strings.HasPrefix(e.Output, "ok ") || strings.HasPrefix(e.Output, "FAIL") || strings.HasPrefix(e.Output, "?")) {
				fmt.Print(e.Output)
			}
		case "pass":
			if e.Test != "" {
				passed++
			}
		case "fail":
			if e.Test != "" {
				failed++
				failures = append(failures, fmt.Sprintf("--- FAIL: %s (%s)\n%s", e.Test, e.Package, text(out[key])))
			} else if b := out[key]; b != nil && !strings.Contains(b.String(), "--- FAIL") {
				buildFailed[e.Package] = true
				failures = append(failures, fmt.Sprintf("--- FAIL: package %s\n%s", e.Package, text(b)))
			}
		case "skip":
			if e.Test != "" {
				skipped++
				reason := ""
				for _, l := range strings.Split(text(out[key]), "\n") {
					if s := strings.TrimSpace(l); s != "" && !strings.HasPrefix(s, "=== ") && !strings.HasPrefix(s, "--- SKIP") {
						reason = s
					}
				}
				skips = append(skips, fmt.Sprintf("  %s %s: %s", e.Package, e.Test, reason))
			}
		}
	}
	if len(skips) > 0 {
		sort.Strings(skips)
		fmt.Printf("\nSkipped tests (%d):\n%s\n", len(skips), strings.Join(skips, "\n"))
	}
	if len(failures) > 0 {
		fmt.Printf("\nFailures:\n%s\n", strings.Join(failures, "\n"))
	}
	if len(buildFailed) > 0 {
		failed += len(buildFailed)
	}
	fmt.Printf("\n%d passed, %d failed, %d skipped\n", passed, failed, skipped)
	if failed > 0 {
		os.Exit(1)
	}
}

func text(b *strings.Builder) string {
	if b == nil {
		return ""
	}
	return b.String()
}
