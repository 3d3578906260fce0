package chaos

import (
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/minikubelet/minikubelet/internal/e2enode"
	"github.com/minikubelet/minikubelet/internal/testnode"
)

var results Results

// TestMain boots the test node (testnode.Main); inside it, runs the
// scenarios and prints their table.
func TestMain(m *testing.M) {
	if sock := os.Getenv(proberEnv); sock != "" {
		runHealthzProber(sock)
		return
	}
	if !testnode.Inside() {
		testnode.Main(m)
		return
	}
	// One build of the daemon for every scenario (each starts its own).
	built := ""
	if os.Getenv("MKL_E2E_BINDIR") == "" && os.Geteuid() == 0 {
		dir, err := os.MkdirTemp("", "mkl-chaos-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			os.Exit(1)
		}
		if _, err := e2enode.Build(dir); err != nil {
			os.RemoveAll(dir)
			fmt.Fprintln(os.Stderr, "chaos:", err)
			os.Exit(1)
		}
		os.Setenv("MKL_E2E_BINDIR", dir)
		built = dir
	}
	code := m.Run()
	if results.Len() > 0 {
		table := results.Markdown()
		fmt.Printf("\nchaos (%s, seed %d):\n%s", mode(), seed, table)
		if p := os.Getenv("MKL_CHAOS_TABLE"); p != "" {
			if err := os.WriteFile(p, []byte(table), 0o644); err != nil {
				fmt.Fprintf(os.Stderr, "chaos: write MKL_CHAOS_TABLE %s: %v\n", p, err)
			}
		}
	}
	if built != "" {
		os.RemoveAll(built)
	}
	os.Exit(code)
}

// full reports whether the default-length run was asked for (make chaos).
func full() bool { return os.Getenv("MKL_CHAOS") == "full" }

func mode() string {
	if full() {
		return "full"
	}
	return "short"
}

// rounds is the number of faults per scenario: CHAOS_ROUNDS, else long in
// full mode and short otherwise.
func rounds(t *testing.T, short, long int) int {
	if s := os.Getenv("CHAOS_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("CHAOS_ROUNDS=%q: want a positive number", s)
		}
		return n
	}
	return pick(short, long)
}

// pick is the short or the full value.
func pick[T any](short, long T) T {
	if full() {
		return long
	}
	return short
}

// seed is MKL_CHAOS_SEED or the clock; every scenario derives its own
// generator from it and its name, so one scenario can be repeated alone.
var seed = func() int64 {
	if s := os.Getenv("MKL_CHAOS_SEED"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n
		}
	}
	return time.Now().UnixNano() % 1000000007
}()

func rng(t *testing.T) *rand.Rand {
	h := int64(0)
	for _, c := range t.Name() {
		h = h*31 + int64(c)
	}
	t.Logf("seed %d (MKL_CHAOS_SEED=%d repeats this run)", seed, seed)
	return rand.New(rand.NewSource(seed ^ h))
}
