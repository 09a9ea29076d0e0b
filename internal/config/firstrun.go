package config

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/toppcloud/toppcloud/internal/provider"
)

// Prompter asks the user questions; the CLI implements it on a terminal.
type Prompter interface {
	// Ask shows question and returns the answer, or def for an empty one.
	Ask(question, def string) (string, error)
	// AskSecret asks without echoing the answer.
	AskSecret(question string) (string, error)
	// Confirm asks a yes/no question; def is the answer to an empty reply.
	Confirm(question string, def bool) (bool, error)
	// Say tells the user something.
	Say(format string, args ...any)
}

// FirstRunOptions is what FirstRun needs from its surroundings.
type FirstRunOptions struct {
	// Home is the user's home directory (for ~/.ssh).
	Home string
	// GOOS is the operating system toppcloud runs on; providers with
	// Info.Local are offered only on linux.
	GOOS string
	// Providers are the provider types to offer (provider registry view).
	Providers []provider.Info
	// Rand is the entropy for a generated key; crypto/rand when nil.
	Rand io.Reader
	// KeyComment is the comment of a generated key ("you@host").
	KeyComment string
}

// Setting is one key = value for a provider section.
type Setting struct {
	Key   string
	Value string
}

// Init is what a new config file holds; FirstRun fills it from answers and
// init-config from flags, then Write renders it.
type Init struct {
	// Section is NAME of [provider:NAME]; DefaultProvider when "".
	Section string
	// Provider is the provider type.
	Provider string
	// Settings are the provider's options, in order (username, secret,
	// region, ...).
	Settings []Setting
	// SecretFile, when set, is written as secret_file: the secret stays in
	// that file.
	SecretFile string
	// AuthorizedKeys are public key lines to install on new nodes.
	AuthorizedKeys []string
	// KeySource is the file the keys came from, for a comment; "" for
	// none.
	KeySource string
	// GeneratedKey is the private key FirstRun created, "" if none.
	GeneratedKey string
	// SSHKey, when set, is written as ssh_key: the private key toppcloud
	// logs in to nodes with (see PrivateKeyBeside).
	SSHKey string
}

// maxTries bounds re-asking after an invalid answer, so a prompter that
// keeps giving the same answer cannot loop forever.
const maxTries = 3

// FirstRun asks for what a first config needs: the provider type, that
// provider's prompted options (secrets without echo), and the SSH public
// key to install on new nodes, offering to generate one when the user has
// none.
func FirstRun(ctx context.Context, p Prompter, opts FirstRunOptions) (Init, error) {
	var in Init
	infos := offered(opts)
	if len(infos) == 0 {
		return in, errors.New("no provider types are available on " + opts.GOOS)
	}
	info, err := askProvider(ctx, p, infos)
	if err != nil {
		return in, err
	}
	in.Section, in.Provider = DefaultProvider, info.Name
	for _, o := range info.Options {
		if !o.Prompt {
			continue
		}
		v, err := askOption(ctx, p, o)
		if err != nil {
			return in, err
		}
		if v != "" {
			in.Settings = append(in.Settings, Setting{Key: o.Name, Value: v})
		}
	}
	if err := ctx.Err(); err != nil {
		return in, err
	}
	if err := chooseKey(p, opts, &in); err != nil {
		return in, err
	}
	return in, nil
}

// offered orders the provider types for the prompt: local ones first (on
// Linux only), then the rest by name.
func offered(opts FirstRunOptions) []provider.Info {
	var out []provider.Info
	for _, info := range opts.Providers {
		if info.Local && opts.GOOS != "linux" {
			continue
		}
		out = append(out, info)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Local != out[j].Local {
			return out[i].Local
		}
		return out[i].Name < out[j].Name
	})
	return out
}

func askProvider(ctx context.Context, p Prompter, infos []provider.Info) (provider.Info, error) {
	p.Say("Where should toppcloud create nodes?")
	width := 0
	for _, info := range infos {
		width = max(width, len(info.Name))
	}
	for i, info := range infos {
		p.Say("  %d) %-*s  %s", i+1, width, info.Name, info.Description)
	}
	for try := 0; try < maxTries; try++ {
		if err := ctx.Err(); err != nil {
			return provider.Info{}, err
		}
		ans, err := p.Ask("Provider type", infos[0].Name)
		if err != nil {
			return provider.Info{}, err
		}
		ans = strings.TrimSpace(ans)
		if n, err := strconv.Atoi(ans); err == nil && n >= 1 && n <= len(infos) {
			return infos[n-1], nil
		}
		for _, info := range infos {
			if strings.EqualFold(ans, info.Name) {
				return info, nil
			}
		}
		p.Say("%q is not one of the types above; give its number or name.", ans)
	}
	return provider.Info{}, errors.New("no provider type chosen")
}

func askOption(ctx context.Context, p Prompter, o provider.Option) (string, error) {
	q := o.Name
	if o.Help != "" {
		q += " (" + o.Help + ")"
	}
	for try := 0; try < maxTries; try++ {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		var v string
		var err error
		if o.Secret {
			v, err = p.AskSecret(q)
		} else {
			v, err = p.Ask(q, o.Default)
		}
		if err != nil {
			return "", err
		}
		v = strings.TrimSpace(v)
		switch {
		case strings.ContainsAny(v, "\r\n\x00"):
			p.Say("%s cannot contain line breaks.", o.Name)
		case v == "" && o.Required:
			p.Say("%s is required.", o.Name)
		default:
			return v, nil
		}
	}
	return "", fmt.Errorf("no value for %s", o.Name)
}

func chooseKey(p Prompter, opts FirstRunOptions, in *Init) error {
	path, keys, err := FindPublicKey(opts.Home)
	if err == nil {
		p.Say("Using %s", tildePath(path, opts.Home))
		in.AuthorizedKeys, in.KeySource = keys, path
		if priv := PrivateKeyBeside(path); priv != "" {
			p.Say("Logging in to nodes with %s", tildePath(priv, opts.Home))
			in.SSHKey = priv
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		p.Say("Not using %v", err)
	} else {
		p.Say("No SSH public key found (~/.ssh/id_ed25519.pub or ~/.ssh/id_rsa.pub).")
	}
	gen := tildePath(filepath.Join(opts.Home, ".ssh", GeneratedKeyName), opts.Home)
	ok, err := p.Confirm(fmt.Sprintf("Create the key pair %s for toppcloud?", gen), true)
	if err != nil {
		return err
	}
	if !ok {
		p.Say("New nodes will not know your SSH key; add it to root_authorized_keys in the config before creating one.")
		return nil
	}
	priv, pub, err := GenerateKey(opts.Home, opts.KeyComment, opts.Rand)
	if err != nil {
		return err
	}
	p.Say("Created %s and %s.pub", tildePath(priv, opts.Home), tildePath(priv, opts.Home))
	in.AuthorizedKeys, in.KeySource, in.GeneratedKey, in.SSHKey = []string{pub}, priv+".pub", priv, priv
	return nil
}

// tildePath shows a path under home as ~/...
func tildePath(path, home string) string {
	if home == "" {
		return path
	}
	if rel, err := filepath.Rel(home, path); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(os.PathSeparator)) {
		return "~/" + filepath.ToSlash(rel)
	}
	return path
}
