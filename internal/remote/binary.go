package remote

import (
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/toppcloud/toppcloud/internal/filestat"
)

// EnvAgentBinary names a Linux toppcloud binary to install on nodes
// instead of the running executable: for clients on other systems, and
// for tests (where the running executable is the test binary).
const EnvAgentBinary = "TOPPCLOUD_AGENT_BINARY"

// Binary is the agent binary a client installs on nodes. Its checksum is
// computed once, on first use.
type Binary struct {
	// Path is the file; see LocalBinary.
	Path string
	// Explicit says Path was chosen by the user (EnvAgentBinary), which
	// error messages mention.
	Explicit bool
	// CacheDir, if set, keeps a record of the binary's checksum (see
	// filestat.SumFile): it is hashed again only when it changed, instead
	// of on every command (~50 ms for ~70 MB).
	CacheDir string

	once sync.Once
	info binaryInfo
	err  error
}

type binaryInfo struct {
	sha256 string
	size   int64
	goarch string // from the ELF header
}

// LocalBinary returns the binary to install: path if not empty (the value
// of EnvAgentBinary), else the running executable.
func LocalBinary(path string) *Binary {
	if path != "" {
		return &Binary{Path: path, Explicit: true}
	}
	exe, err := os.Executable()
	b := &Binary{Path: exe}
	if err != nil {
		b.once.Do(func() { b.err = fmt.Errorf("find the running executable: %w", err) })
	}
	return b
}

func (b *Binary) load() (binaryInfo, error) {
	b.once.Do(func() {
		b.info, b.err = inspectBinary(b.Path, b.CacheDir)
		if b.err != nil && !b.Explicit && runtime.GOOS != "linux" {
			b.err = fmt.Errorf("this toppcloud runs on %s/%s and cannot be installed on a Linux node: build one for the node (GOOS=linux GOARCH=amd64 go build -o toppcloud-linux ./cmd/toppcloud) and set %s to its path",
				runtime.GOOS, runtime.GOARCH, EnvAgentBinary)
		}
	})
	return b.info, b.err
}

// SHA256 returns the binary's checksum, the fingerprint an agent running
// it reports.
func (b *Binary) SHA256() (string, error) {
	info, err := b.load()
	return info.sha256, err
}

// sumRecordPath names the checksum record of the binary at path in
// cacheDir: one per path.
func sumRecordPath(cacheDir, path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	h := sha256.Sum256([]byte(path))
	return filepath.Join(cacheDir, "binary-"+hex.EncodeToString(h[:8])+".json")
}

func inspectBinary(path, cacheDir string) (binaryInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return binaryInfo{}, fmt.Errorf("agent binary: %w", err)
	}
	defer f.Close()
	ef, err := elf.NewFile(f)
	if err != nil {
		return binaryInfo{}, fmt.Errorf("agent binary %s is not a Linux executable (%v)", path, err)
	}
	goarch, ok := elfArch(ef)
	if !ok {
		return binaryInfo{}, fmt.Errorf("agent binary %s is for an unsupported machine (%s)", path, ef.Machine)
	}
	fi, err := f.Stat()
	if err != nil {
		return binaryInfo{}, fmt.Errorf("agent binary: %w", err)
	}
	record := ""
	if cacheDir != "" {
		record = sumRecordPath(cacheDir, path)
	}
	sum, _, err := filestat.SumFile(path, record, true)
	if err != nil {
		return binaryInfo{}, fmt.Errorf("agent binary: %w", err)
	}
	return binaryInfo{sha256: sum, size: fi.Size(), goarch: goarch}, nil
}

func elfArch(f *elf.File) (string, bool) {
	switch f.Machine {
	case elf.EM_X86_64:
		return "amd64", true
	case elf.EM_AARCH64:
		return "arm64", true
	case elf.EM_386:
		return "386", true
	case elf.EM_ARM:
		return "arm", true
	case elf.EM_RISCV:
		return "riscv64", true
	case elf.EM_PPC64:
		if f.ByteOrder.String() == "LittleEndian" {
			return "ppc64le", true
		}
		return "ppc64", true
	case elf.EM_S390:
		return "s390x", true
	}
	return "", false
}

// unameArch maps `uname -m` to GOARCH.
func unameArch(m string) (string, error) {
	switch m {
	case "x86_64", "amd64":
		return "amd64", nil
	case "aarch64", "arm64":
		return "arm64", nil
	case "i386", "i486", "i586", "i686":
		return "386", nil
	case "armv6l", "armv7l", "armv8l":
		return "arm", nil
	case "riscv64":
		return "riscv64", nil
	case "ppc64le":
		return "ppc64le", nil
	case "ppc64":
		return "ppc64", nil
	case "s390x":
		return "s390x", nil
	}
	return "", errors.New("unknown machine " + m)
}
