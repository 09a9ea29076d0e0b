// Package cli is toppcloud's command line: one file per command group,
// flags bound into request types, and the only package that prints for
// humans. cmd/toppcloud calls Main.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/toppcloud/toppcloud/internal/nodes"
	"github.com/toppcloud/toppcloud/internal/provider"
)

// App carries what every command needs: where to write, the global flags,
// and the seams tests replace (environment, home directory, /etc/hosts,
// provider types). There is no package-level state; each run builds its
// own App.
type App struct {
	out       *Output
	stdin     io.Reader
	getenv    func(string) string
	providers *provider.Registry
	// sess is the run's node session (see nodes), made on first use and
	// closed when the command ends.
	sess *nodes.Session

	// Global flags.
	providerName string
	yes          bool
	verbose      int
	quiet        bool
	configPath   string
	debugAPI     string
	sshKey       string

	// home is the user's home directory (~/.toppcloud, ~/.ssh live there).
	home string
	// etcHosts is the hosts file create-node and update may edit.
	etcHosts string
}

// Env is the outside world a run of the CLI sees. Tests fill it; Main uses
// the real process's.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	Home           string
	EtcHosts       string
	// Providers are the provider types config sections may name; nil
	// means every backend linked in (provider.Registered).
	Providers *provider.Registry
}

// Main runs the command line with the process's environment and returns
// the exit status.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	home, _ := os.UserHomeDir()
	return Run(ctx, args, Env{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		Getenv: os.Getenv, Home: home, EtcHosts: "/etc/hosts",
	})
}

// Run runs the command line in env and returns the exit status.
func Run(ctx context.Context, args []string, env Env) int {
	a := &App{
		out:       newOutput(env.Stdout, env.Stderr),
		stdin:     env.Stdin,
		getenv:    env.Getenv,
		providers: env.Providers,
		home:      env.Home,
		etcHosts:  env.EtcHosts,
	}
	if a.getenv == nil {
		a.getenv = func(string) string { return "" }
	}
	if a.providers == nil {
		a.providers = provider.Registered()
	}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	err := root.ExecuteContext(ctx)
	if a.sess != nil {
		a.sess.Close()
	}
	if err != nil {
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			fmt.Fprintln(env.Stderr, "toppcloud: interrupted")
			return ExitFailed
		}
		var silent *silentError
		if errors.As(err, &silent) {
			return silent.code
		}
		fmt.Fprintln(env.Stderr, "toppcloud: "+strings.TrimSpace(err.Error()))
		// cobra reports an unknown command as a plain error; it is a usage
		// mistake all the same.
		if strings.HasPrefix(err.Error(), "unknown command") {
			return ExitUsage
		}
	}
	return exitCode(err)
}

func (a *App) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "toppcloud",
		Short: "Create servers, set them up, and deploy web applications to them",
		Long: `toppcloud creates and destroys servers ("nodes") through a provider
(Rackspace, OpenStack, EC2, DigitalOcean, Hetzner, Linode, Vultr, a server
you already have, or local containers), sets them up to a known
configuration, and deploys applications described by an app.ini to them
with zero-downtime switching and instant rollback.

Configuration lives in ~/.toppcloud.conf (or --config, or $TOPPCLOUD_CONFIG);
it is created on first use. The client's records (nodes.json, known_hosts,
caches) live in ~/.toppcloud, or $TOPPCLOUD_STATE.

Nodes are logged in to with the private key named by --ssh-key, else
$TOPPCLOUD_SSH_KEY, else ssh_key in the node's [provider:NAME] section (or
[DEFAULT]); the usual ~/.ssh keys and ssh-agent's follow.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			a.out.Verbose = a.verbose
			a.out.Quiet = a.quiet
			if a.quiet && a.verbose > 0 {
				return usagef("-q and -v cannot be used together")
			}
			return nil
		},
	}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &UsageError{Err: fmt.Errorf("%w (see %s --help)", err, cmd.CommandPath())}
	})
	pf := root.PersistentFlags()
	pf.StringVarP(&a.providerName, "provider", "p", "default", "which [provider:NAME] section of the config to use")
	pf.BoolVarP(&a.yes, "yes", "y", false, "answer yes to every question")
	pf.CountVarP(&a.verbose, "verbose", "v", "say more (repeatable)")
	pf.BoolVarP(&a.quiet, "quiet", "q", false, "print only results, warnings and errors")
	pf.StringVar(&a.configPath, "config", "", "config file (default $TOPPCLOUD_CONFIG or ~/.toppcloud.conf)")
	pf.StringVar(&a.debugAPI, "debug-api", "", "append every provider API request and response to `FILE` (credentials redacted)")
	pf.StringVar(&a.sshKey, "ssh-key", "", "log in to nodes with the private key `FILE` (default $TOPPCLOUD_SSH_KEY, else ssh_key in the config section)")

	root.AddGroup(
		&cobra.Group{ID: "nodes", Title: "Nodes:"},
		&cobra.Group{ID: "apps", Title: "Applications:"},
		&cobra.Group{ID: "devel", Title: "Developing an application:"},
		&cobra.Group{ID: "other", Title: "Other:"},
	)
	for _, c := range a.commands() {
		root.AddCommand(c)
	}
	root.SetHelpCommandGroupID("other")
	root.SetCompletionCommandGroupID("other")
	return root
}

// commands lists every command; each comes from the file of its group.
func (a *App) commands() []*cobra.Command {
	return []*cobra.Command{
		a.listImagesCmd(),
		a.listSizesCmd(),
		a.listNodesCmd(),
		a.createNodeCmd(),
		a.destroyNodeCmd(),
		a.startNodeCmd(),
		a.stopNodeCmd(),
		a.setupNodeCmd(),
		a.nodeInfoCmd(),
		a.nodeCACmd(),
		a.nodeAgentCmd(),
		a.nodeJobCmd(),
		a.updateCmd(),
		a.activateCmd(),
		a.deactivateCmd(),
		a.queryCmd(),
		a.cleanNodeCmd(),
		a.disableCmd(false),
		a.disableCmd(true),
		a.logsCmd(),
		a.initCmd(),
		a.serveCmd(),
		a.createConfigCmd(),
		a.diffCmd(),
		a.backupCmd(),
		a.restoreCmd(),
		a.clearCmd(),
		a.runCmd(),
		a.initConfigCmd(),
		a.versionCmd(),
	}
}

// exactArgs is cobra.ExactArgs returning a UsageError.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return &UsageError{Err: fmt.Errorf("%s: %w (usage: %s)", cmd.Name(), err, cmd.UseLine())}
		}
		return nil
	}
}

// minArgs is cobra.MinimumNArgs returning a UsageError.
func minArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.MinimumNArgs(n)(cmd, args); err != nil {
			return &UsageError{Err: fmt.Errorf("%s: %w (usage: %s)", cmd.Name(), err, cmd.UseLine())}
		}
		return nil
	}
}

// rangeArgs is cobra.RangeArgs returning a UsageError.
func rangeArgs(lo, hi int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.RangeArgs(lo, hi)(cmd, args); err != nil {
			return &UsageError{Err: fmt.Errorf("%s: %w (usage: %s)", cmd.Name(), err, cmd.UseLine())}
		}
		return nil
	}
}
