package nodeshutdown

// logind.go: Logind over the system bus (org.freedesktop.login1), and the
// logind.conf.d drop-in that raises InhibitDelayMaxSec.

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"
)

const (
	logindService   = "org.freedesktop.login1"
	logindPath      = dbus.ObjectPath("/org/freedesktop/login1")
	logindInterface = "org.freedesktop.login1.Manager"

	// LogindConfDir is where the drop-in goes (kubelet: the same folder,
	// its file 99-kubelet.conf).
	LogindConfDir = "/etc/systemd/logind.conf.d"
	// DropInName is minikubelet's drop-in in LogindConfDir.
	DropInName = "99-minikubelet.conf"

	// The inhibitor as `systemd-inhibit --list` shows it.
	InhibitWho  = "minikubelet"
	InhibitWhy  = "minikubelet stops pods gracefully before the node shuts down"
	InhibitWhat = "shutdown"
	InhibitMode = "delay"
)

// callTimeout bounds each call: a bus whose logind does not answer (or
// has to be activated and cannot be) must not hold the daemon up.
const callTimeout = 10 * time.Second

type dbusLogind struct {
	conn    *dbus.Conn
	obj     dbus.BusObject
	confDir string
	out     chan bool
}

// Connect opens a private connection to the system bus, checks that
// logind answers there and subscribes to PrepareForShutdown. confDir is
// where OverrideInhibitDelay writes its drop-in.
func Connect(ctx context.Context, confDir string) (Logind, error) {
	conn, err := dbus.ConnectSystemBus(dbus.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("system bus: %w", err)
	}
	l := &dbusLogind{conn: conn, obj: conn.Object(logindService, logindPath), confDir: confDir, out: make(chan bool, 4)}
	if _, err := l.InhibitDelayMax(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("systemd-logind (%s) on the system bus: %w", logindService, err)
	}
	if err := conn.AddMatchSignalContext(ctx, dbus.WithMatchObjectPath(logindPath),
		dbus.WithMatchInterface(logindInterface), dbus.WithMatchMember("PrepareForShutdown")); err != nil {
		conn.Close()
		return nil, fmt.Errorf("subscribe to logind PrepareForShutdown: %w", err)
	}
	sigs := make(chan *dbus.Signal, 16)
	conn.Signal(sigs)
	go func() {
		// godbus closes sigs when the connection ends.
		defer close(l.out)
		for s := range sigs {
			if s == nil || s.Path != logindPath || s.Name != logindInterface+".PrepareForShutdown" || len(s.Body) == 0 {
				continue
			}
			if down, ok := s.Body[0].(bool); ok {
				l.out <- down
			}
		}
	}()
	return l, nil
}

func (l *dbusLogind) InhibitDelayMax(ctx context.Context) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var v dbus.Variant
	if err := l.obj.CallWithContext(ctx, "org.freedesktop.DBus.Properties.Get", 0, logindInterface, "InhibitDelayMaxUSec").Store(&v); err != nil {
		return 0, err
	}
	us, ok := v.Value().(uint64)
	if !ok {
		return 0, fmt.Errorf("InhibitDelayMaxUSec is %s, not a uint64", v.Signature())
	}
	if us > math.MaxInt64/uint64(time.Microsecond) {
		return time.Duration(math.MaxInt64), nil // "infinity"
	}
	return time.Duration(us) * time.Microsecond, nil
}

func (l *dbusLogind) Inhibit(ctx context.Context) (io.Closer, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var fd dbus.UnixFD
	if err := l.obj.CallWithContext(ctx, logindInterface+".Inhibit", 0, InhibitWhat, InhibitWho, InhibitWhy, InhibitMode).Store(&fd); err != nil {
		return nil, err
	}
	// The lock lives as long as this descriptor is open anywhere, so it
	// must never reach a pod's supervisor (exec'd from this process). Go
	// receives descriptors close-on-exec already; this says it here too.
	unix.CloseOnExec(int(fd))
	return os.NewFile(uintptr(fd), "logind-inhibitor"), nil
}

// Reload sends SIGHUP to systemd-logind.service through systemd (kubelet
// ReloadLogindConf), which makes logind read its configuration again.
func (l *dbusLogind) Reload(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	sd := l.conn.Object("org.freedesktop.systemd1", "/org/freedesktop/systemd1")
	return sd.CallWithContext(ctx, "org.freedesktop.systemd1.Manager.KillUnit", 0,
		"systemd-logind.service", "all", int32(unix.SIGHUP)).Err
}

func (l *dbusLogind) OverrideInhibitDelay(d time.Duration) error {
	return WriteDropIn(l.confDir, d)
}

func (l *dbusLogind) Shutdowns() <-chan bool { return l.out }

func (l *dbusLogind) Close() error { return l.conn.Close() }

// WriteDropIn writes <dir>/99-minikubelet.conf with InhibitDelayMaxSec
// (whole seconds, rounded up) atomically.
func WriteDropIn(dir string, d time.Duration) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("logind drop-in folder: %w", err)
	}
	secs := int64((d + time.Second - 1) / time.Second)
	body := fmt.Sprintf("# Written by minikubelet: --shutdown-grace-period needs logind to let its\n"+
		"# inhibitor lock delay a shutdown this long (as the kubelet's 99-kubelet.conf).\n"+
		"[Login]\nInhibitDelayMaxSec=%d\n", secs)
	path := filepath.Join(dir, DropInName)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		return fmt.Errorf("logind drop-in %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("logind drop-in %s: %w", path, err)
	}
	return nil
}
