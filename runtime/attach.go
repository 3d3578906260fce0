package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"k8s.io/apimachinery/pkg/types"

	"github.com/minikubelet/minikubelet/runtime/shim"
)

// Attach streams stdin into a running container that has stdin: true (its
// pipe, or its terminal with tty: true) until stdin ends. The container's
// output is its log (LogPath): follow that for the other direction.
func (r *Runtime) Attach(ctx context.Context, uid types.UID, id string, stdin io.Reader) error {
	sb := r.sandboxDir(uid)
	sock := filepath.Join(sb, shim.SocketFile)
	if len(sock) > 100 {
		d, err := os.Open(sb)
		if err != nil {
			return err
		}
		defer d.Close()
		sock = "/proc/self/fd/" + strconv.Itoa(int(d.Fd())) + "/" + shim.SocketFile
	}
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "unix", sock)
	if err != nil {
		return fmt.Errorf("attach %s: %w", id, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	// No trailing newline: every byte after the request object is stdin.
	req, _ := json.Marshal(shim.Request{Op: "attach", ID: id})
	if _, err := conn.Write(req); err != nil {
		return err
	}
	var resp shim.Response
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		return fmt.Errorf("attach %s: %w", id, err)
	}
	if resp.Error != "" {
		return fmt.Errorf("attach: %s", resp.Error)
	}
	if _, err := io.Copy(conn, stdin); err != nil && ctx.Err() == nil {
		return fmt.Errorf("attach %s: %w", id, err)
	}
	conn.(*net.UnixConn).CloseWrite()
	return ctx.Err()
}

// ResizeTerminal sets the window size of a tty: true container.
func (r *Runtime) ResizeTerminal(ctx context.Context, uid types.UID, id string, ws WindowSize) error {
	_, err := call(ctx, r.sandboxDir(uid), shim.Request{Op: "resize", ID: id, Rows: ws.Rows, Cols: ws.Cols})
	return err
}
