package main

import (
	"runtime"

	"golang.org/x/sys/unix"
)

func closeFD(fd int) { _ = unix.Close(fd) }

func numCPU() int { return runtime.NumCPU() }
