package host

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// POSIX ACL entry tags and the xattr's version, from the kernel's
// include/uapi/linux/posix_acl_xattr.h.
const (
	aclVersion  = 2
	aclUserObj  = 0x01
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclOther    = 0x20
	aclNoID     = 0xffffffff
)

// GrantGroupRead gives group gid read and search access to the directory
// real (a real path) on top of its mode, through a POSIX access ACL, and
// leaves others none: owner rwx, owning group r-x, gid r-x, others
// nothing. It is how Caddy's group reads every instance directory while
// each is otherwise its app's only (root owns it, the app's group reads
// it), without putting Caddy in every app's group (which would need a
// restart of the front server for every new app).
//
// Written by hand: the format is four fields per entry, and the acl
// package's setfacl is not on every node.
func GrantGroupRead(real string, gid int) error {
	entries := [][3]uint32{
		{aclUserObj, 7, aclNoID},
		{aclGroupObj, 5, aclNoID},
		{aclGroup, 5, uint32(gid)},
		{aclMask, 5, aclNoID},
		{aclOther, 0, aclNoID},
	}
	b := binary.LittleEndian.AppendUint32(nil, aclVersion)
	for _, e := range entries {
		b = binary.LittleEndian.AppendUint16(b, uint16(e[0]))
		b = binary.LittleEndian.AppendUint16(b, uint16(e[1]))
		b = binary.LittleEndian.AppendUint32(b, e[2])
	}
	if err := unix.Lsetxattr(real, "system.posix_acl_access", b, 0); err != nil {
		return fmt.Errorf("grant group %d read access to %s: %w", gid, real, err)
	}
	return nil
}

// GroupReadGranted reports whether real has exactly the ACL
// GrantGroupRead sets for gid.
func GroupReadGranted(real string, gid int) bool {
	b := make([]byte, 256)
	n, err := unix.Lgetxattr(real, "system.posix_acl_access", b)
	if err != nil || n != 4+5*8 {
		return false
	}
	b = b[:n]
	for i := 4; i < n; i += 8 {
		if binary.LittleEndian.Uint16(b[i:]) == aclGroup && binary.LittleEndian.Uint32(b[i+4:]) == uint32(gid) &&
			binary.LittleEndian.Uint16(b[i+2:]) == 5 {
			return true
		}
	}
	return false
}
