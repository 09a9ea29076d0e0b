package manifest

import (
	"io/fs"
	"syscall"
)

// sysStat returns the ctime, inode and device of a file.
func sysStat(fi fs.FileInfo) (ctimeNs int64, ino, dev uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ctim.Nano(), st.Ino, st.Dev
	}
	return 0, 0, 0
}
