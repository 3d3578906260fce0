package runtime

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"

	"github.com/elastic/go-seccomp-bpf/arch"
	mobyseccomp "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Seccomp profiles are compiled here, in the daemon, to classic BPF in pure
// Go (no libseccomp, no cgo): moby's profile code resolves the profile for
// the container's capabilities, architecture and kernel into OCI rules;
// compileSeccomp turns the rules into a program the container init loads
// on the thread that execs. Syscall numbers come from go-seccomp-bpf's
// tables; names a table does not know are skipped (as containerd does for
// syscalls the kernel lacks).

// seccompFilter resolves the profile named by seccompProfile() into BPF;
// nil means unconfined.
func (r *Runtime) seccompFilter(profile string, caps []string) ([]unix.SockFilter, error) {
	rs := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: caps}}}
	var ls *specs.LinuxSeccomp
	var err error
	switch {
	case profile == "" || profile == "unconfined":
		return nil, nil
	case profile == "runtime/default":
		ls, err = mobyseccomp.GetDefaultProfile(rs)
	case strings.HasPrefix(profile, "localhost/"):
		name := strings.TrimPrefix(profile, "localhost/")
		// Relative to <root-dir>/seccomp, as kubelet's <root-dir>/seccomp.
		path := name
		if !filepath.IsAbs(path) {
			path = filepath.Join(r.opt.RootDir, "seccomp", name)
		}
		body, rerr := os.ReadFile(path)
		if rerr != nil {
			return nil, fmt.Errorf("seccomp localhost profile %s: %w", name, rerr)
		}
		ls, err = mobyseccomp.LoadProfile(string(body), rs)
	default:
		return nil, fmt.Errorf("unknown seccomp profile %q", profile)
	}
	if err != nil {
		return nil, fmt.Errorf("seccomp profile %s: %w", profile, err)
	}
	f, err := compileSeccomp(ls, nil)
	if err != nil {
		return nil, fmt.Errorf("seccomp profile %s: %w", profile, err)
	}
	return f, nil
}

// Return values of a seccomp filter.
const (
	retKillThread  = 0x00000000
	retKillProcess = 0x80000000
	retTrap        = 0x00030000
	retErrno       = 0x00050000
	retTrace       = 0x7ff00000
	retLog         = 0x7ffc0000
	retAllow       = 0x7fff0000
	x32SyscallBit  = 0x40000000
	offNr          = 0
	offArch        = 4
	offArgs        = 16
)

func seccompAction(a specs.LinuxSeccompAction, errno *uint, defErrno uint) (uint32, error) {
	e := defErrno
	if errno != nil {
		e = *errno
	}
	switch a {
	case specs.ActAllow:
		return retAllow, nil
	case specs.ActErrno:
		return retErrno | uint32(e&0xffff), nil
	case specs.ActKill, specs.ActKillThread:
		return retKillThread, nil
	case specs.ActKillProcess:
		return retKillProcess, nil
	case specs.ActTrap:
		return retTrap, nil
	case specs.ActLog:
		return retLog, nil
	case specs.ActTrace:
		return retTrace | uint32(e&0xffff), nil
	}
	return 0, fmt.Errorf("seccomp action %s is not supported", a)
}

// Jump targets while a rule is being assembled.
const (
	jFail = 255 // end of the rule: try the next one
	jNext = 254 // end of this argument condition
)

func stmt(code uint16, k uint32) unix.SockFilter { return unix.SockFilter{Code: code, K: k} }
func jump(code uint16, k uint32, jt, jf uint8) unix.SockFilter {
	return unix.SockFilter{Code: code, K: k, Jt: jt, Jf: jf}
}

const (
	ldAbs = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
	jeq   = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	jgt   = unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K
	jge   = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
	andK  = unix.BPF_ALU | unix.BPF_AND | unix.BPF_K
	ret   = unix.BPF_RET | unix.BPF_K
)

// argOffsets gives the offsets of the low and high words of argument i.
func argOffsets(i uint) (lo, hi uint32) {
	base := uint32(offArgs + 8*i)
	if binary.NativeEndian.Uint16([]byte{1, 0}) == 1 {
		return base, base + 4
	}
	return base + 4, base
}

// condition emits the test of one argument; it ends in jNext on success
// and jFail on failure (64-bit compares done as high word, then low word).
func condition(a specs.LinuxSeccompArg) ([]unix.SockFilter, error) {
	lo, hi := argOffsets(a.Index)
	if a.Index > 5 {
		return nil, fmt.Errorf("seccomp argument index %d out of range", a.Index)
	}
	vhi, vlo := uint32(a.Value>>32), uint32(a.Value)
	switch a.Op {
	case specs.OpEqualTo:
		return []unix.SockFilter{stmt(ldAbs, hi), jump(jeq, vhi, 0, jFail), stmt(ldAbs, lo), jump(jeq, vlo, jNext, jFail)}, nil
	case specs.OpNotEqual:
		return []unix.SockFilter{stmt(ldAbs, hi), jump(jeq, vhi, 0, jNext), stmt(ldAbs, lo), jump(jeq, vlo, jFail, jNext)}, nil
	case specs.OpMaskedEqual:
		whi, wlo := uint32(a.ValueTwo>>32), uint32(a.ValueTwo)
		return []unix.SockFilter{stmt(ldAbs, hi), stmt(andK, vhi), jump(jeq, whi, 0, jFail),
			stmt(ldAbs, lo), stmt(andK, vlo), jump(jeq, wlo, jNext, jFail)}, nil
	case specs.OpLessThan: // fail when arg >= v
		return []unix.SockFilter{stmt(ldAbs, hi), jump(jgt, vhi, jFail, 0), jump(jeq, vhi, 0, jNext), stmt(ldAbs, lo), jump(jge, vlo, jFail, jNext)}, nil
	case specs.OpLessEqual:
		return []unix.SockFilter{stmt(ldAbs, hi), jump(jgt, vhi, jFail, 0), jump(jeq, vhi, 0, jNext), stmt(ldAbs, lo), jump(jgt, vlo, jFail, jNext)}, nil
	case specs.OpGreaterThan:
		return []unix.SockFilter{stmt(ldAbs, hi), jump(jgt, vhi, jNext, 0), jump(jeq, vhi, 0, jFail), stmt(ldAbs, lo), jump(jgt, vlo, jNext, jFail)}, nil
	case specs.OpGreaterEqual:
		return []unix.SockFilter{stmt(ldAbs, hi), jump(jgt, vhi, jNext, 0), jump(jeq, vhi, 0, jFail), stmt(ldAbs, lo), jump(jge, vlo, jNext, jFail)}, nil
	}
	return nil, fmt.Errorf("seccomp operator %s is not supported", a.Op)
}

// rule assembles: load nr; if nr != num goto end; conditions...; ret action.
func rule(num uint32, args []specs.LinuxSeccompArg, action uint32) ([]unix.SockFilter, error) {
	block := []unix.SockFilter{stmt(ldAbs, offNr), jump(jeq, num, 0, jFail)}
	for _, a := range args {
		c, err := condition(a)
		if err != nil {
			return nil, err
		}
		start := len(block)
		block = append(block, c...)
		end := len(block) // jNext lands here
		for i := start; i < end; i++ {
			for _, t := range []*uint8{&block[i].Jt, &block[i].Jf} {
				if *t == jNext {
					*t = uint8(end - (i + 1))
				}
			}
		}
	}
	block = append(block, stmt(ret, action))
	end := len(block)
	for i := range block {
		for _, t := range []*uint8{&block[i].Jt, &block[i].Jf} {
			if *t == jFail {
				if end-(i+1) > 250 {
					return nil, fmt.Errorf("seccomp rule too long")
				}
				*t = uint8(end - (i + 1))
			}
		}
	}
	return block, nil
}

// secondaryArches are the other ABIs a native architecture runs, by the
// profile's name for them (moby's profile lists x86 and x32 for amd64).
var secondaryArches = map[arch.AuditArch][]struct {
	name specs.Arch
	info *arch.Info
}{
	arch.X86_64.ID:  {{specs.ArchX86, arch.I386}},
	arch.AARCH64.ID: {{specs.ArchARM, arch.ARM}},
}

// compileSeccomp turns OCI seccomp rules into one BPF program for the
// native architecture (info nil) or the one given, plus the 32-bit ABI the
// profile lists (i386 on amd64, arm on arm64), each with its own syscall
// numbers. x32 calls on amd64 get the default action.
//
//	ld arch; (jeq ARCH_i; ja block_i)...; ret default
//	block_i: ld nr; rules...; ret default
func compileSeccomp(ls *specs.LinuxSeccomp, info *arch.Info) ([]unix.SockFilter, error) {
	if ls == nil {
		return nil, nil
	}
	if info == nil {
		var err error
		if info, err = arch.GetInfo(goruntime.GOARCH); err != nil {
			if info, err = arch.GetInfo(""); err != nil {
				return nil, err
			}
		}
	}
	defErrno := uint(unix.EPERM)
	if ls.DefaultErrnoRet != nil {
		defErrno = *ls.DefaultErrnoRet
	}
	def, err := seccompAction(ls.DefaultAction, ls.DefaultErrnoRet, defErrno)
	if err != nil {
		return nil, err
	}
	infos := []*arch.Info{info}
	for _, sec := range secondaryArches[info.ID] {
		for _, a := range ls.Architectures {
			if a == sec.name {
				infos = append(infos, sec.info)
			}
		}
	}
	var blocks [][]unix.SockFilter
	for _, in := range infos {
		b, err := seccompBlock(ls, in, def, defErrno)
		if err != nil {
			return nil, err
		}
		blocks = append(blocks, b)
	}
	header := 1 + 2*len(infos) + 1
	prog := []unix.SockFilter{stmt(ldAbs, offArch)}
	start := header
	for i, in := range infos {
		prog = append(prog, jump(jeq, uint32(in.ID), 0, 1))
		ja := len(prog)
		prog = append(prog, unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JA, K: uint32(start - (ja + 1))})
		start += len(blocks[i])
	}
	prog = append(prog, stmt(ret, def))
	for _, b := range blocks {
		prog = append(prog, b...)
	}
	if len(prog) > 4096 {
		return nil, fmt.Errorf("seccomp program has %d instructions, the kernel takes 4096", len(prog))
	}
	return prog, nil
}

// seccompBlock is the rules of one ABI: load the syscall number, test each
// rule, fall back to the default action.
func seccompBlock(ls *specs.LinuxSeccomp, info *arch.Info, def uint32, defErrno uint) ([]unix.SockFilter, error) {
	prog := []unix.SockFilter{stmt(ldAbs, offNr)}
	if info.ID == arch.X86_64.ID {
		prog = append(prog, jump(jge, x32SyscallBit, 0, 1), stmt(ret, def))
	}
	for _, sc := range ls.Syscalls {
		act, err := seccompAction(sc.Action, sc.ErrnoRet, defErrno)
		if err != nil {
			return nil, err
		}
		if act == def {
			continue // same as falling through
		}
		for _, name := range sc.Names {
			num, ok := info.SyscallNames[name]
			if !ok {
				continue
			}
			b, err := rule(uint32(num|info.SeccompMask), sc.Args, act)
			if err != nil {
				return nil, fmt.Errorf("syscall %s (%s): %w", name, info.Name, err)
			}
			prog = append(prog, b...)
		}
	}
	return append(prog, stmt(ret, def)), nil
}
