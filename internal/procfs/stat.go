// Package procfs reads the one /proc file the daemon, its tests and the
// benchmarks all need: /proc/<pid>/stat. One parser, so the rule that the
// command name (field 2) may hold spaces and parentheses is kept once.
// SelfCPU is this process's CPU time at a finer grain than that file's.
package procfs

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Stat holds the fields of /proc/<pid>/stat that are used here (proc(5)).
type Stat struct {
	State      byte   // field 3: R, S, D, Z, ...
	UTime      uint64 // field 14, clock ticks
	STime      uint64 // field 15, clock ticks
	StartTicks uint64 // field 22: start time after boot; with the PID, names one process
}

// ReadStat reads and parses /proc/<pid>/stat.
func ReadStat(pid int) (Stat, error) {
	name := fmt.Sprintf("/proc/%d/stat", pid)
	b, err := os.ReadFile(name)
	if err != nil {
		return Stat{}, err
	}
	st, err := ParseStat(string(b))
	if err != nil {
		return Stat{}, fmt.Errorf("%s: %w", name, err)
	}
	return st, nil
}

// ParseStat parses the content of a stat file. The command name is
// everything between the first "(" and the last ")", so the fields are
// counted from the last ")".
func ParseStat(s string) (Stat, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return Stat{}, fmt.Errorf("no ')' after the command name")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); field n is f[n-3].
	if len(f) < 20 || len(f[0]) != 1 {
		return Stat{}, fmt.Errorf("%d fields after the command name, want at least 20", len(f))
	}
	var st Stat
	st.State = f[0][0]
	for _, x := range []struct {
		field int
		into  *uint64
	}{{14, &st.UTime}, {15, &st.STime}, {22, &st.StartTicks}} {
		v, err := strconv.ParseUint(f[x.field-3], 10, 64)
		if err != nil {
			return Stat{}, fmt.Errorf("field %d: %w", x.field, err)
		}
		*x.into = v
	}
	return st, nil
}

// Alive reports whether pid exists and is not a zombie.
func Alive(pid int) bool {
	st, err := ReadStat(pid)
	return err == nil && st.State != 'Z'
}
