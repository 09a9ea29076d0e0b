package instance

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/atomicfile"
)

// File is a file the agent writes for an instance.
type File struct {
	// Path is absolute on the node.
	Path string
	// Mode is the file's permission bits; every file is owned by root.
	Mode fs.FileMode
	Data []byte
}

// Files returns every file the instance needs besides the template unit:
// its env file (0600), php-fpm config (php) and drop-in. A static app
// needs none.
func (i *Instance) Files() ([]File, error) {
	if err := i.Validate(); err != nil {
		return nil, err
	}
	if !i.HasProcess() {
		return nil, nil
	}
	env, err := EnvFile(i.ProcessEnv())
	if err != nil {
		return nil, fmt.Errorf("instance %s: %w", i.Name, err)
	}
	out := []File{{Path: EnvFilePath(i.Layout, i.Name), Mode: 0o600, Data: env}}
	if i.Kind == appconfig.KindCommand {
		out = append(out, File{Path: ProxyEnvPath(i.Layout, i.Name), Mode: 0o644, Data: i.proxyEnv()})
	}
	if i.Kind == appconfig.KindPHP {
		conf, err := i.FPMConfig()
		if err != nil {
			return nil, err
		}
		// The php-fpm master runs as the app user and must read it; it
		// holds no secrets.
		out = append(out, File{Path: FPMConfigPath(i.Layout, i.Name), Mode: 0o644, Data: conf})
	}
	dropIn, err := i.DropIn()
	if err != nil {
		return nil, err
	}
	out = append(out, File{Path: DropInPath(i.Layout, i.Name), Mode: 0o644, Data: dropIn})
	workers, err := i.workerFiles(i.WorkerJobs)
	if err != nil {
		return nil, err
	}
	return append(out, workers...), nil
}

// WriteFiles writes files under root ("" or "/" for the node itself; a
// temporary directory in tests), creating directories 0755, each file
// replaced atomically with its mode.
func WriteFiles(root string, files []File) error {
	for _, f := range files {
		p := filepath.Join(root, f.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		if err := atomicfile.WriteFile(p, f.Data, f.Mode); err != nil {
			return err
		}
		// WriteFile keeps an existing file's mode; ours must be exact.
		if err := os.Chmod(p, f.Mode); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	return nil
}

// RemoveFiles removes what Files wrote for the instance (under root), the
// directories that held only them, its EnableLinks, and the instance's
// socket directory.
// Call it once the unit is stopped. Missing files are not an error.
func (i *Instance) RemoveFiles(root string) error {
	l := i.Layout
	var errs []error
	if err := removeEnableLinks(l, root, i.Name); err != nil {
		errs = append(errs, err)
	}
	dirs := []string{l.InstanceEtcDir(i.Name), filepath.Dir(DropInPath(l, i.Name)), l.SocketDir(i.Name)}
	for _, wu := range workerUnitsOnDisk(l, root, i.Name) {
		dirs = append(dirs, path.Dir(dropIn(l, wu.Unit(), workerDropIn)))
	}
	for _, dir := range dirs {
		if err := os.RemoveAll(filepath.Join(root, dir)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("remove files of instance %s: %w", i.Name, errors.Join(errs...))
	}
	return nil
}
