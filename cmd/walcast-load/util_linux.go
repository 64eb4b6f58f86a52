package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

func closeFD(fd int) { _ = unix.Close(fd) }

func numCPU() int { return runtime.NumCPU() }

// pinSelf sets the CPU affinity of every thread of this process (threads
// created later inherit it). cpus is a taskset-style list of single CPUs, e.g. "1".
func pinSelf(cpus string) error {
	var set unix.CPUSet
	for _, f := range strings.Split(cpus, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return fmt.Errorf("cpu list %q: %w", cpus, err)
		}
		set.Set(n)
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil {
			return fmt.Errorf("pin thread %d: %w", tid, err)
		}
	}
	return nil
}

// readNonblock is read(2) on a non-blocking socket without the Go scheduler's
// syscall bookkeeping: it never blocks, so the P need not be handed off.
func readNonblock(fd int, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}
