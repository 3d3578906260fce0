package main

// image.go: `minikubelet image import|pull|ls|rm|inspect|prune`. Every
// subcommand works on the store under the root dir directly, whether or not
// the daemon runs (the store locks itself; see runtime/images). The root dir
// is --root-dir when given, else the one of the daemon on --socket, else the
// default. Only import and pull create a store; the others never write one.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/minikubelet/minikubelet/internal/layout"
	"github.com/minikubelet/minikubelet/runtime/images"
)

func init() { registerCommand(newImageCmd) }

// imageOptions are the flags of the image subcommands.
type imageOptions struct {
	nodeOptions
	socket   string
	insecure []string
}

// open opens the store; without create, a root dir holding no store gives
// (nil, nil) and nothing is written.
func (o *imageOptions) open(cmd *cobra.Command, create bool) (*images.Store, error) {
	root, err := resolveRootDir(cmd, o.rootDir, o.socket)
	if err != nil {
		return nil, err
	}
	o.rootDir = root
	if !create {
		if _, err := os.Stat(layout.Root(root).Images()); errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
	}
	return images.Open(root, images.Options{InsecureRegistries: o.insecure})
}

func newImageCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Manage the node's images (import, pull, ls, rm)",
		Long: `Manage the image store under <root-dir>/images. Works whether or not the daemon
runs. Archives dropped into <root-dir>/images/import are imported by the daemon.
Registry credentials: <root-dir>/config.json, /var/lib/kubelet/config.json,
$DOCKER_CONFIG/config.json, $HOME/.docker/config.json (first match wins).`,
	}
	cmd.AddCommand(newImageImportCmd(), newImagePullCmd(), newImageLsCmd(), newImageRmCmd(), newImageInspectCmd(), newImagePruneCmd())
	return cmd
}

func (o *imageOptions) addFlags(cmd *cobra.Command, registry bool) {
	o.nodeOptions.addFlags(cmd.Flags())
	_ = cmd.Flags().MarkHidden("node-name") // shared node flags; images do not depend on it
	cmd.Flags().StringVar(&o.socket, "socket", defaultSocket, "unix socket of the daemon, asked for its root dir when --root-dir is not given")
	if registry {
		cmd.Flags().StringArrayVar(&o.insecure, "insecure-registry", nil, "host:port reached over plain HTTP (repeatable)")
	}
}

// imageCommand completes an image subcommand: its flags (with registry,
// --insecure-registry too) and a RunE that opens the store (see open) and
// hands it to run.
func imageCommand(cmd *cobra.Command, create, registry bool, run func(cmd *cobra.Command, args []string, o *imageOptions, s *images.Store) error) *cobra.Command {
	var o imageOptions
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		s, err := o.open(cmd, create)
		if err != nil {
			return err
		}
		return run(cmd, args, &o, s)
	}
	o.addFlags(cmd, registry)
	return cmd
}

// exitIfFailed is exit status 1 when some of a command's items failed
// (each already reported on stderr).
func exitIfFailed(failed int) error {
	if failed > 0 {
		return &exitError{code: 1}
	}
	return nil
}

func newImageImportCmd() *cobra.Command {
	return imageCommand(&cobra.Command{
		Use:   "import FILE...",
		Short: "Import docker-archive or OCI-archive tarballs (plain, gzip or zstd)",
		Args:  cobra.MinimumNArgs(1),
	}, true, false, func(cmd *cobra.Command, args []string, _ *imageOptions, s *images.Store) error {
		ctx, stop := clientContext(cmd)
		defer stop()
		failed := 0
		for _, f := range args {
			recs, err := s.Import(ctx, f, nil)
			for _, r := range recs {
				printImportedImage(cmd.OutOrStdout(), r)
			}
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "minikubelet: import", err)
				failed++
			}
		}
		return exitIfFailed(failed)
	})
}

func printImportedImage(w io.Writer, r images.Record) {
	if len(r.RepoTags) == 0 {
		fmt.Fprintln(w, r.ID)
	}
	for _, t := range r.RepoTags {
		fmt.Fprintln(w, t)
	}
}

func newImagePullCmd() *cobra.Command {
	var quiet bool
	cmd := imageCommand(&cobra.Command{
		Use:   "pull REF",
		Short: "Pull an image from its registry (busybox means docker.io/library/busybox:latest)",
		Args:  cobra.ExactArgs(1),
	}, true, true, func(cmd *cobra.Command, args []string, _ *imageOptions, s *images.Store) error {
		ctx, stop := clientContext(cmd)
		defer stop()
		var pr *imagePullProgress
		var fn images.ProgressFunc
		if !quiet {
			pr = newImagePullProgress(cmd.ErrOrStderr())
			fn = pr.update
		}
		rec, err := s.Pull(ctx, args[0], fn)
		if pr != nil {
			pr.finish()
		}
		if err != nil {
			return err
		}
		ref, _ := images.ParseReference(args[0])
		fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", ref, rec.Digest())
		return nil
	})
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress on stderr")
	return cmd
}

// imagePullProgress shows pull progress on stderr: one line rewritten in place
// on a terminal, a line every few seconds otherwise.
type imagePullProgress struct {
	w     io.Writer
	tty   bool
	mu    sync.Mutex
	last  time.Time
	shown bool
	p     images.Progress
}

func newImagePullProgress(w io.Writer) *imagePullProgress {
	pp := &imagePullProgress{w: w}
	if f, ok := w.(*os.File); ok {
		_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		pp.tty = err == nil
	}
	return pp
}

func (pp *imagePullProgress) update(p images.Progress) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	pp.p = p
	every := 3 * time.Second
	if pp.tty {
		every = 200 * time.Millisecond
	}
	if time.Since(pp.last) < every {
		return
	}
	pp.last = time.Now()
	pp.print()
}

func (pp *imagePullProgress) print() {
	p := pp.p
	line := fmt.Sprintf("pulling %s: %s / %s, %d/%d layers", p.Ref, imageHumanSize(p.Done), imageHumanSize(p.Total), p.LayersDone, p.LayersTotal)
	if pp.tty {
		fmt.Fprintf(pp.w, "\r\033[K%s", line)
	} else {
		fmt.Fprintln(pp.w, line)
	}
	pp.shown = true
}

func (pp *imagePullProgress) finish() {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if pp.p.Total > 0 {
		pp.print()
	}
	if pp.shown && pp.tty {
		fmt.Fprintln(pp.w)
	}
}

func newImageLsCmd() *cobra.Command {
	var quiet, noTrunc bool
	cmd := imageCommand(&cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List images: REF, DIGEST, SIZE, CREATED, IN USE",
		Args:    cobra.NoArgs,
	}, false, false, func(cmd *cobra.Command, _ []string, _ *imageOptions, s *images.Store) error {
		var list []images.ImageInfo
		if s != nil {
			var err error
			if list, err = s.List(); err != nil {
				return err
			}
		}
		out := cmd.OutOrStdout()
		if quiet {
			for _, im := range list {
				fmt.Fprintln(out, im.ID)
			}
			return nil
		}
		tw := tabwriter.NewWriter(out, 0, 8, 3, ' ', 0)
		fmt.Fprintln(tw, "REF\tDIGEST\tSIZE\tCREATED\tIN USE")
		for _, im := range list {
			refs := im.RepoTags
			if len(refs) == 0 {
				refs = []string{"<none>"}
			}
			d := im.Digest()
			if !noTrunc {
				d = imageShortDigest(d)
			}
			inUse := "no"
			if im.InUse > 0 {
				inUse = fmt.Sprintf("yes (%d)", im.InUse)
			}
			for _, r := range refs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r, d, imageHumanSize(im.Size), imageCreatedAgo(im.Created), inUse)
			}
		}
		return tw.Flush()
	})
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "image IDs only")
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "full digests")
	return cmd
}

func imageShortDigest(d string) string {
	if i := strings.Index(d, ":"); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	return d
}

// imageHumanSize is Docker's decimal size (4.26MB).
func imageHumanSize(n int64) string {
	units := []string{"B", "kB", "MB", "GB", "TB"}
	f := float64(n)
	i := 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%dB", n)
	}
	return fmt.Sprintf("%.3g%s", f, units[i])
}

func imageCreatedAgo(t time.Time) string {
	if t.IsZero() || t.Unix() <= 0 {
		return "N/A"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return "less than a minute ago"
	case d < time.Hour:
		return fmt.Sprintf("%d minutes ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d hours ago", int(d.Hours()))
	case d < 14*24*time.Hour:
		return fmt.Sprintf("%d days ago", int(d.Hours()/24))
	case d < 60*24*time.Hour:
		return fmt.Sprintf("%d weeks ago", int(d.Hours()/24/7))
	case d < 2*365*24*time.Hour:
		return fmt.Sprintf("%d months ago", int(d.Hours()/24/30))
	}
	return fmt.Sprintf("%d years ago", int(d.Hours()/24/365))
}

func newImageRmCmd() *cobra.Command {
	return imageCommand(&cobra.Command{
		Use:     "rm REF...",
		Aliases: []string{"rmi", "remove"},
		Short:   "Remove images (refused while a container uses them) and free their layers",
		Args:    cobra.MinimumNArgs(1),
	}, false, false, func(cmd *cobra.Command, args []string, o *imageOptions, s *images.Store) error {
		if s == nil {
			return &exitError{code: 1, err: fmt.Errorf("no image store in %s", layout.Root(o.rootDir).Images())}
		}
		failed := 0
		for _, ref := range args {
			r, err := s.Remove(ref)
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "minikubelet: rm:", err)
				failed++
				continue
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted: %s (%s)\n", ref, r.ID)
		}
		if res, err := s.GC(); err != nil {
			fmt.Fprintln(cmd.ErrOrStderr(), "minikubelet: gc:", err)
			failed++
		} else if res.Skipped != "" {
			fmt.Fprintf(cmd.ErrOrStderr(), "layers not freed yet: %s (run `minikubelet image prune` later)\n", res.Skipped)
		}
		return exitIfFailed(failed)
	})
}

func newImageInspectCmd() *cobra.Command {
	return imageCommand(&cobra.Command{
		Use:   "inspect REF",
		Short: "Print an image's record (references, digests, config, layers) as JSON",
		Args:  cobra.ExactArgs(1),
	}, false, false, func(cmd *cobra.Command, args []string, o *imageOptions, s *images.Store) error {
		if s == nil {
			return &exitError{code: 1, err: fmt.Errorf("image %q: not found (no image store in %s)", args[0], layout.Root(o.rootDir).Images())}
		}
		r, found, err := s.Lookup(args[0])
		if err != nil {
			return err
		}
		if !found {
			return &exitError{code: 1, err: fmt.Errorf("image %q: not found in %s", args[0], s.Dir())}
		}
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	})
}

func newImagePruneCmd() *cobra.Command {
	return imageCommand(&cobra.Command{
		Use:   "prune",
		Short: "Remove layers and blobs no image uses, and leftovers of interrupted work",
		Args:  cobra.NoArgs,
	}, false, false, func(cmd *cobra.Command, _ []string, o *imageOptions, s *images.Store) error {
		if s == nil {
			fmt.Fprintf(cmd.OutOrStdout(), "nothing to prune: no image store in %s\n", layout.Root(o.rootDir).Images())
			return nil
		}
		res, err := s.GC()
		if err != nil {
			return err
		}
		if res.Skipped != "" {
			return &exitError{code: 1, err: errors.New("not pruned: " + res.Skipped)}
		}
		fmt.Fprintf(cmd.OutOrStdout(), "removed %d layers, %d blobs, %d work dirs (%s)\n", res.Layers, res.Blobs, res.TempDirs, imageHumanSize(res.Bytes))
		return nil
	})
}
