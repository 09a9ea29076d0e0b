package cli

import (
	"fmt"
	"io"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/toppcloud/toppcloud/internal/agent"
	"github.com/toppcloud/toppcloud/internal/nodes"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

// nodeAgentCmd is `toppcloud node OP`: the agent side, which the client
// runs on nodes over SSH. Hidden: people never type it.
func (a *App) nodeAgentCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "node OPERATION",
		Short:              "Run an agent operation on this node (used by toppcloud over SSH)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			// A client that goes away (Ctrl-C, a lost connection) closes
			// our stdout. Without this the next progress line would kill
			// the agent with SIGPIPE half way through an update; with it,
			// the write fails and the operation finishes (or rolls back)
			// on its own.
			signal.Ignore(syscall.SIGPIPE)
			code := agent.New().Main(cmd.Context(), args, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
			if len(args) > 0 && args[0] == protocol.OpRun && code != 0 {
				// run's status is the script's, with no words of ours.
				return &silentError{code: code}
			}
			switch code {
			case 0:
				return nil
			case ExitUsage:
				return usagef("node: bad operation %q", strings.Join(args, " "))
			default:
				// The client reads the reason from the message stream.
				return fmt.Errorf("node %s failed", strings.Join(args, " "))
			}
		},
	}
}

func (a *App) nodeCACmd() *cobra.Command {
	var user string
	cmd := &cobra.Command{
		Use:   "node-ca HOSTNAME",
		Short: "Print the root certificate of a node's own CA",
		Long: `Print, as PEM, the root certificate of the CA a node signs its https
certificates with when it does not use an ACME CA (local nodes by default,
or acme_ca = internal):

    toppcloud node-ca NODE > ca.pem
    curl --cacert ca.pem https://HOST/`,
		GroupID: "nodes",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			n, rec, err := a.nodes().Connect(ctx, args[0], nodes.ConnectOptions{User: user})
			if err != nil {
				return err
			}
			var res protocol.NodeCAResult
			if err := n.Call(ctx, protocol.OpNodeCA, nil, &res, a.streamSteps()); err != nil {
				return withTail(fmt.Errorf("node-ca %s: %w", rec.Name, err))
			}
			_, err = io.WriteString(a.out.Stdout, res.RootPEM)
			return err
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "log in as `USER` (with passwordless sudo) instead of the recorded user")
	return cmd
}

func (a *App) nodeInfoCmd() *cobra.Command {
	var asJSON bool
	var user string
	cmd := &cobra.Command{
		Use:   "node-info HOSTNAME",
		Short: "Show what setup-node did on a node and its agent's version",
		Long: `Print the node's /etc/toppcloud/node.json (toppcloud version, time of the last
setup-node that changed something, OS, package versions), the version of
its agent, and how toppcloud logs in to it: user, address, the SSH key named
for it (and by which setting) and the key that logged in. Like every command
that talks to a node, it replaces an agent that differs from this toppcloud.`,
		GroupID: "nodes",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			s := a.nodes()
			n, rec, err := s.Connect(ctx, args[0], nodes.ConnectOptions{User: user, NoInstall: true})
			if err != nil {
				return err
			}
			var info protocol.InfoResult
			if err := n.Call(ctx, protocol.OpInfo, nil, &info, a.streamSteps()); err != nil {
				return withTail(fmt.Errorf("node-info %s: %w", rec.Name, err))
			}
			login, err := s.LoginOf(ctx, rec, user)
			if err != nil {
				return err
			}
			if asJSON {
				return a.out.JSON(struct {
					protocol.InfoResult
					Login nodes.Login `json:"login"`
				}{info, login})
			}
			a.printNodeInfo(rec.Name, info, login)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print {agent, node, login} as JSON")
	cmd.Flags().StringVar(&user, "user", "", "log in as `USER` (with passwordless sudo) instead of the recorded user")
	return cmd
}

func (a *App) printNodeInfo(name string, info protocol.InfoResult, login nodes.Login) {
	w := a.out.Stdout
	v := info.Agent
	fmt.Fprintf(w, "node:      %s\n", name)
	fmt.Fprintf(w, "login:     %s@%s\n", login.User, login.Addr)
	fmt.Fprintf(w, "ssh key:   %s\n", login.Key)
	if login.Used != "" {
		fmt.Fprintf(w, "logged in: with %s\n", login.Used)
	}
	fmt.Fprintf(w, "agent:     toppcloud %s (protocol %d, %s/%s, sha256 %s)\n", v.Version, v.Protocol, v.GOOS, v.GOARCH, short(v.Fingerprint))
	ni := info.Node
	if ni == nil {
		fmt.Fprintf(w, "setup:     never completed (run toppcloud setup-node %s)\n", name)
		return
	}
	fmt.Fprintf(w, "os:        %s\n", ni.OS.PrettyName)
	fmt.Fprintf(w, "set up:    %s by %s with toppcloud %s (first %s)\n", ni.SetupAt.Format(time.RFC3339), ni.SetupBy, ni.Version, ni.FirstSetupAt.Format(time.RFC3339))
	if len(ni.Changed) > 0 {
		fmt.Fprintf(w, "changed:   %s\n", strings.Join(ni.Changed, ", "))
	}
	names := make([]string, 0, len(ni.Packages))
	for p := range ni.Packages {
		names = append(names, p)
	}
	slices.Sort(names)
	fmt.Fprintln(w, "packages:")
	for _, p := range names {
		fmt.Fprintf(w, "  %-22s %s\n", p, ni.Packages[p])
	}
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}
