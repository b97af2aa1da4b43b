//go:build !unix

package attach

import "os"

// owner is not known here; the directory's mode is the check.
func owner(fi os.FileInfo) (int, bool) { return 0, false }
