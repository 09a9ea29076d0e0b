//go:build !linux && !darwin

package filestat

import "io/fs"

// sysID has nothing portable: no inode, no ctime.
func sysID(fi fs.FileInfo) (dev, ino uint64, ctimeNs int64, ok bool) { return 0, 0, 0, false }
