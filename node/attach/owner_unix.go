//go:build unix

package attach

import (
	"os"
	"syscall"
)

// owner is the uid that owns a file.
func owner(fi os.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}
