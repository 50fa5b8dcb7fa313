//go:build !linux

package redistest

import (
	"os"
	"os/exec"
)

var sigStop, sigCont os.Signal

func setProcAttr(cmd *exec.Cmd) {}
