package filestat

import (
	"io/fs"
	"syscall"
)

// sysID returns the device, inode and ctime of a file.
func sysID(fi fs.FileInfo) (dev, ino uint64, ctimeNs int64, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, 0, false
	}
	return st.Dev, st.Ino, st.Ctim.Nano(), true
}
