package main

import "syscall"

// sysProcAttr makes a child die with the demo, even when the demo is killed
// without a chance to clean up (the demo starts children from a goroutine
// locked to the main thread, so the signal is tied to the process's life).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
