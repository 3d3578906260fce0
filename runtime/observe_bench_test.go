package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/minikubelet/minikubelet/internal/procfs"
	"github.com/minikubelet/minikubelet/runtime/shim"
)

// BenchmarkObserveIdlePods measures what one full observation round asks
// of the runtime for pods that all run and have nothing to do (issue 17):
// SandboxStatus and ListContainers per pod, as the shell's observePod
// calls them. Each pod has a running container and an exited one (a
// restart); its supervisor is a goroutine of the benchmark answering ping
// and list, so the round trips are counted (both ends: cpu-ns/op is the
// process's CPU time per round) but no pod process runs.
func BenchmarkObserveIdlePods(b *testing.B) {
	for _, pods := range []int{100, 500} {
		b.Run(fmt.Sprint(pods), func(b *testing.B) {
			root := b.TempDir()
			r, err := New(Options{RootDir: root, LogDir: filepath.Join(root, "logs"), Exe: "/bin/false",
				Log: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			uids := make([]types.UID, pods)
			for i := range uids {
				uids[i] = types.UID(fmt.Sprintf("bench-%04d", i))
				fakeIdlePod(b, r, uids[i])
			}
			// An idle pod's records were written long ago; records younger
			// than the cache's racy window (a second) are read again.
			time.Sleep(time.Second + 100*time.Millisecond)
			ctx := context.Background()
			b.ResetTimer()
			cpu := procfs.SelfCPU()
			for b.Loop() {
				for _, uid := range uids {
					if st, err := r.SandboxStatus(ctx, uid); err != nil || st.PID == 0 {
						b.Fatalf("sandbox %s: %+v %v", uid, st, err)
					}
					cs, err := r.ListContainers(ctx, uid)
					if err != nil || len(cs) != 2 {
						b.Fatalf("containers of %s: %+v %v", uid, cs, err)
					}
				}
			}
			b.ReportMetric(float64(procfs.SelfCPU()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// fakeIdlePod writes the records of a running pod whose pause is this
// process, and serves its supervisor socket until the benchmark ends.
func fakeIdlePod(b *testing.B, r *Runtime, uid types.UID) {
	b.Helper()
	now := time.Now()
	write := func(path string, v any) {
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			b.Fatal(err)
		}
		if err := shim.WriteJSONAtomic(path, v); err != nil {
			b.Fatal(err)
		}
	}
	sbDir := r.sandboxDir(uid)
	write(filepath.Join(sbDir, sandboxMetaFile), sandboxMeta{PodUID: uid, Namespace: "default", Name: string(uid),
		PID: os.Getpid(), StartTicks: procStartTicks(os.Getpid()), Hostname: string(uid)})
	write(filepath.Join(sbDir, shim.SandboxStateFile), shim.SandboxState{PID: 1, StartedAt: now})
	running, exited := string(uid)+"-running", string(uid)+"-exited"
	for i, id := range []string{exited, running} {
		dir := r.containerDir(uid, id)
		write(filepath.Join(dir, containerMetaFile), containerMeta{ID: id, PodUID: uid, Name: "app", Attempt: i,
			LogPath: filepath.Join(r.opt.LogDir, string(uid), "app", fmt.Sprint(i)+".log")})
		write(filepath.Join(dir, shim.ContainerStateFile), shim.ContainerState{ID: id, PID: 2 + i, CreatedAt: now, StartedAt: now})
	}
	write(filepath.Join(r.containerDir(uid, exited), shim.ExitFile), shim.ExitRecord{ID: exited, ExitCode: 1, Reason: "Error",
		StartedAt: now, FinishedAt: now})
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(sbDir, shim.SocketFile), Net: "unix"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.AcceptUnix()
			if err != nil {
				return // closed by the cleanup
			}
			var req shim.Request
			if json.NewDecoder(c).Decode(&req) == nil {
				json.NewEncoder(c).Encode(shim.Response{Containers: []string{exited, running}})
			}
			c.Close()
		}
	}()
}
