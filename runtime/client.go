package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/minikubelet/minikubelet/runtime/shim"
)

// call sends one request to a pod's supervisor. A fresh connection per
// request: after a daemon restart there is nothing to re-establish.
func call(ctx context.Context, sandboxDir string, req shim.Request) (*shim.Response, error) {
	sock := filepath.Join(sandboxDir, shim.SocketFile)
	var closeDir func()
	if len(sock) > 100 {
		// sun_path holds 108 bytes: reach the socket through a short
		// /proc/self/fd/<dir>/ path instead.
		d, err := os.Open(sandboxDir)
		if err != nil {
			return nil, err
		}
		closeDir = func() { d.Close() }
		sock = "/proc/self/fd/" + strconv.Itoa(int(d.Fd())) + "/" + shim.SocketFile
	}
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "unix", sock)
	if closeDir != nil {
		closeDir()
	}
	if err != nil {
		return nil, fmt.Errorf("pod supervisor %s: %w", sandboxDir, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	} else if req.Op != "wait" {
		conn.SetDeadline(time.Now().Add(60 * time.Second))
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return nil, fmt.Errorf("pod supervisor %s: send %s: %w", sandboxDir, req.Op, err)
	}
	var resp shim.Response
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		return nil, fmt.Errorf("pod supervisor %s: %s: %w", sandboxDir, req.Op, err)
	}
	if resp.Error != "" {
		return &resp, fmt.Errorf("%s", resp.Error)
	}
	return &resp, nil
}
