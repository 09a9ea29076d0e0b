// Package filestat tells whether a file may have changed without reading
// it: by its stat. Any write changes mtime and ctime; restoring mtime
// (touch -d, tar, rsync -t) still changes ctime, which user space cannot
// set; a replacement file has a new inode. So an ID that matches a file
// as it is now describes the content it had when the ID was taken. The
// manifest's hash cache relies on this, and so do the sum records here
// (SumFile, RecordSum): the sha256 of a file kept beside it, so a ~70 MB
// binary is not hashed on every run.
package filestat

import (
	"io/fs"
	"time"
)

// RacyWindow: a file modified this close to the moment it was read may
// change again without its timestamps moving (they are only as fine as
// the kernel's coarse clock, or 2 s on FAT), so an ID taken then must not
// be trusted later. Git calls such index entries "racily clean".
const RacyWindow = 2 * time.Second

// ID is what is compared: a file's device, inode, size, mtime and ctime.
type ID struct {
	Dev     uint64 `json:"dev"`
	Ino     uint64 `json:"ino"`
	Size    int64  `json:"size"`
	MtimeNs int64  `json:"mtime_ns"`
	CtimeNs int64  `json:"ctime_ns"`
}

// Of returns fi's ID. full is false where the system gives no inode and
// ctime (then only size and mtime are set, which is weaker).
func Of(fi fs.FileInfo) (id ID, full bool) {
	id = ID{Size: fi.Size(), MtimeNs: fi.ModTime().UnixNano()}
	id.Dev, id.Ino, id.CtimeNs, full = sysID(fi)
	return id, full
}
