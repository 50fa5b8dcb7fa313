//go:build !linux

package main

import "syscall"

// sysProcAttr: outside Linux there is no parent-death signal; the demo's
// cleanup stops its children.
func sysProcAttr() *syscall.SysProcAttr { return nil }
