package cli

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/toppcloud/toppcloud/internal/config"
	"github.com/toppcloud/toppcloud/internal/provider"
)

func (a *App) initConfigCmd() *cobra.Command {
	var o struct {
		typ, section, username, secretFile, key, region, endpoint string
		force                                                     bool
	}
	cmd := &cobra.Command{
		Use:   "init-config --provider TYPE",
		Short: "Write ~/.toppcloud.conf without questions",
		Long: `Write a new config file non-interactively (the first-run questions, as flags).
The secret is read from --secret-file (the path is recorded as secret_file, so the
secret itself is never on a command line). The public key to install on new nodes
is --key: a .pub file or a key line; by default ~/.ssh/id_ed25519.pub, then
~/.ssh/id_rsa.pub. When the .pub file's private half sits beside it, that is
recorded as ssh_key, the key toppcloud logs in to nodes with.

Known provider types: ` + strings.Join(a.providers.Names(), ", "),
		Example: `  toppcloud init-config --provider local
  toppcloud init-config --provider rackspace --section rs --username me --secret-file ~/.rackspace-key --region DFW`,
		GroupID: "other",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.typ == "" {
				return usagef("init-config needs --provider TYPE (one of %s)", strings.Join(a.providers.Names(), ", "))
			}
			info, ok := a.providers.Lookup(o.typ)
			if !ok {
				return asUsage(&provider.UnknownTypeError{Type: o.typ, Known: a.providers.Names()})
			}
			var keys []string
			keySource := o.key
			if o.key != "" {
				k, err := config.ReadAuthorizedKeys(o.key)
				if err != nil {
					return asUsage(err)
				}
				keys = k
				// A file's private half is recorded as ssh_key, which the
				// config reads relative to its own directory: make it
				// absolute.
				if path := config.ExpandHome(o.key, a.home); fileExists(path) {
					if abs, err := filepath.Abs(path); err == nil {
						keySource = abs
					}
				}
			} else {
				path, k, err := config.FindPublicKey(a.home)
				if err != nil {
					return usagef("no public key to install on new nodes: %v; give one with --key PUBKEY (ssh-keygen -t ed25519 makes one)", err)
				}
				keys, keySource = k, path
			}
			init := config.Init{
				Section:        o.section,
				Provider:       info.Name,
				SecretFile:     o.secretFile,
				AuthorizedKeys: keys,
				KeySource:      keySource,
				SSHKey:         config.PrivateKeyBeside(keySource),
			}
			if o.username != "" {
				init.Settings = append(init.Settings, config.Setting{Key: "username", Value: o.username})
			}
			if o.region != "" {
				init.Settings = append(init.Settings, config.Setting{Key: "region", Value: o.region})
			}
			if o.endpoint != "" {
				init.Settings = append(init.Settings, config.Setting{Key: "endpoint", Value: o.endpoint})
			}
			path := a.configFile()
			if err := config.Write(path, init, o.force); err != nil {
				return asUsage(err)
			}
			a.out.Printf("wrote %s ([provider:%s], provider = %s)", path, o.section, info.Name)
			if init.SSHKey != "" {
				a.out.Printf("nodes are logged in to with %s (ssh_key)", init.SSHKey)
			}
			return nil
		},
	}
	f := cmd.Flags()
	// --provider here is the provider type, as the first-run message
	// says; it shadows the global -p/--provider (a section name).
	f.StringVar(&o.typ, "provider", "", "provider type: "+strings.Join(a.providers.Names(), ", "))
	f.StringVar(&o.section, "section", "default", "name of the [provider:NAME] section to write")
	f.StringVar(&o.username, "username", "", "the provider account's user name (where it has one)")
	f.StringVar(&o.secretFile, "secret-file", "", "file holding the API key or token")
	f.StringVar(&o.key, "key", "", "public key to install on new nodes: a .pub file (its private half beside it becomes ssh_key) or a key line")
	f.StringVar(&o.region, "region", "", "region or data centre")
	f.StringVar(&o.endpoint, "endpoint", "", "API root URL replacing the provider's public one")
	f.BoolVar(&o.force, "force", false, "overwrite an existing config file")
	return cmd
}

// firstRun asks the first-run questions on the terminal and writes the
// config file.
func (a *App) firstRun(ctx context.Context, path string) error {
	init, err := config.FirstRun(ctx, newTermPrompter(a), config.FirstRunOptions{
		Home: a.home, GOOS: runtime.GOOS, Providers: a.providers.Infos(), KeyComment: localUser(),
	})
	if err != nil {
		return fmt.Errorf("first-run configuration: %w", err)
	}
	if err := config.Write(path, init, false); err != nil {
		return err
	}
	a.out.Printf("wrote %s", path)
	return nil
}

// termPrompter asks questions on the terminal for config.FirstRun and
// confirmations.
type termPrompter struct {
	a  *App
	in *bufio.Reader
}

func newTermPrompter(a *App) *termPrompter {
	return &termPrompter{a: a, in: bufio.NewReader(a.stdin)}
}

func (p *termPrompter) Say(format string, args ...any) {
	fmt.Fprintf(p.a.out.Stderr, format+"\n", args...)
}

func (p *termPrompter) Ask(question, def string) (string, error) {
	if def != "" {
		fmt.Fprintf(p.a.out.Stderr, "%s [%s]: ", question, def)
	} else {
		fmt.Fprintf(p.a.out.Stderr, "%s: ", question)
	}
	line, err := p.in.ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("read answer: %w", err)
	}
	line = strings.TrimSpace(line)
	if line == "" {
		return def, nil
	}
	return line, nil
}

func (p *termPrompter) AskSecret(question string) (string, error) {
	fmt.Fprintf(p.a.out.Stderr, "%s (not shown): ", question)
	f, ok := p.a.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", fmt.Errorf("cannot read a secret without a terminal")
	}
	b, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(p.a.out.Stderr)
	if err != nil {
		return "", fmt.Errorf("read secret: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func (p *termPrompter) Confirm(question string, def bool) (bool, error) {
	hint := "y/N"
	if def {
		hint = "Y/n"
	}
	for {
		fmt.Fprintf(p.a.out.Stderr, "%s [%s] ", question, hint)
		line, err := p.in.ReadString('\n')
		if err != nil && line == "" {
			return false, fmt.Errorf("read answer: %w", err)
		}
		switch strings.ToLower(strings.TrimSpace(line)) {
		case "":
			return def, nil
		case "y", "yes":
			return true, nil
		case "n", "no":
			return false, nil
		}
	}
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

func fileExists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}
