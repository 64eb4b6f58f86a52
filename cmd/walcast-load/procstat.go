package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/<pid>/stat. It is 100
// on every Linux this runs on (sysconf(_SC_CLK_TCK)).
const clockTicks = 100

// ProcSample is one reading of a process's CPU time and memory from /proc.
type ProcSample struct {
	CPU   time.Duration // utime+stime
	RSS   int64         // VmRSS in bytes
	HWM   int64         // VmHWM (peak RSS) in bytes
	Valid bool
}

// readProc reads /proc/<pid>/stat and /proc/<pid>/status. pid 0 means self.
func readProc(pid int) (ProcSample, error) {
	p := "self"
	if pid > 0 {
		p = strconv.Itoa(pid)
	}
	stat, err := os.ReadFile("/proc/" + p + "/stat")
	if err != nil {
		return ProcSample{}, fmt.Errorf("read /proc/%s/stat: %w", p, err)
	}
	// The command name may contain spaces; fields restart after the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return ProcSample{}, fmt.Errorf("parse /proc/%s/stat: no ')'", p)
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime 15.
	if len(f) < 13 {
		return ProcSample{}, fmt.Errorf("parse /proc/%s/stat: %d fields", p, len(f))
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	s := ProcSample{CPU: time.Duration(ut+st) * time.Second / clockTicks, Valid: true}
	status, err := os.ReadFile("/proc/" + p + "/status")
	if err != nil {
		return ProcSample{}, fmt.Errorf("read /proc/%s/status: %w", p, err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var dst *int64
		switch k {
		case "VmRSS":
			dst = &s.RSS
		case "VmHWM":
			dst = &s.HWM
		default:
			continue
		}
		fs := strings.Fields(v)
		if len(fs) > 0 {
			n, _ := strconv.ParseInt(fs[0], 10, 64)
			*dst = n * 1024
		}
	}
	return s, nil
}

// loadAvg returns the first three fields of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
