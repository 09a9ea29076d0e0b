package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/toppcloud/toppcloud/internal/config"
	"github.com/toppcloud/toppcloud/internal/nodes"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/remote"
	"github.com/toppcloud/toppcloud/internal/site"
)

// roleName says what a node is in its site.
func roleName(r protocol.SiteRole) string {
	switch {
	case r.Balancer:
		return "balancer"
	case r.Services:
		return "services node"
	}
	return "app node"
}

func (a *App) setupNodeCmd() *cobra.Command {
	var o nodes.SetupOptions
	var siteName string
	cmd := &cobra.Command{
		Use:   "setup-node HOSTNAME | --site NAME",
		Short: "Set a node up: packages, deploy user, firewall, Caddy",
		Long: `Turn a recorded node (create-node made or registered it) running Debian 12+
or Ubuntu 22.04+ into a toppcloud node: install the package set (Caddy,
Python, gunicorn, PHP-FPM, nftables, ...), install this toppcloud as the node
agent at /usr/local/bin/toppcloud, create the deploy user www-mgr with your
public keys, lay out /var/www and /var/lib/toppcloud, make the node secret,
load the firewall (SSH, HTTP and HTTPS only), and start Caddy serving the
"not found" page until something is deployed.

Each step is shown with its time. Running setup-node again changes nothing on
a node that is set up, and finishes one where an earlier run failed.

The node is reached as the user recorded for it (root), or as --user, which
must be able to run sudo without a password, with the key --ssh-key,
$TOPPCLOUD_SSH_KEY or the section's ssh_key names (else your ~/.ssh keys and
ssh-agent's). The keys given to www-mgr are the section's
root_authorized_keys, else your ~/.ssh public key.

A client that is not linux/amd64 (or the node's architecture) installs the
Linux binary named by $TOPPCLOUD_AGENT_BINARY instead of itself.

--site NAME sets up every node of [site:NAME] in the config file, one after the
other, each for its role: the balancer (no app runtime; its front server
proxies the site's locations to the app nodes), the services node (the site's
databases, reachable from the app nodes only) and the app nodes (which
believe X-Forwarded-* headers from the balancer only); then the balancer is
given the site. A node of a site set up on its own (setup-node HOSTNAME) gets
its role too.`,
		GroupID: "nodes",
		Args:    rangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			o.Events = a.streamSteps()
			switch {
			case siteName != "" && len(args) > 0:
				return usagef("setup-node: give HOSTNAME or --site NAME, not both")
			case siteName != "":
				s, err := a.siteNamed(ctx, siteName)
				if err != nil {
					return err
				}
				return withTail(a.siteRunner(s).Setup(ctx, func(ctx context.Context, node string, role protocol.SiteRole) error {
					a.out.Printf("setting up %s (%s of site %s)", node, roleName(role), s.Name)
					no := o
					no.Site = &role
					return a.nodes().Setup(ctx, node, no)
				}))
			case len(args) == 0:
				return usagef("setup-node: give HOSTNAME or --site NAME")
			}
			role, err := a.siteRole(ctx, args[0])
			if err != nil {
				return err
			}
			o.Site = role
			return withTail(a.nodes().Setup(ctx, args[0], o))
		},
	}
	cmd.Flags().StringVar(&o.User, "user", "", "log in as `USER` (with passwordless sudo) instead of the recorded user")
	cmd.Flags().StringVar(&siteName, "site", "", "set up every node of site `NAME`, each for its role")
	return cmd
}

// siteRole is the role of node in its site (nil: the node is in no
// site), said to the user.
func (a *App) siteRole(ctx context.Context, node string) (*protocol.SiteRole, error) {
	sites, err := a.nodes().Sites(ctx)
	if err != nil {
		return nil, err
	}
	s, ok := config.SiteOfNode(sites, node)
	if !ok {
		return nil, nil
	}
	roles, err := site.FromConfig(s).Roles(a.nodes().PrivateAddress)
	if err != nil {
		return nil, fmt.Errorf("%s is a node of site %s: %w", node, s.Name, err)
	}
	role := roles[node]
	a.out.Printf("%s is the %s of site %s", node, roleName(role), s.Name)
	return &role, nil
}

// streamSteps shows an operation's events as step lines and its log
// lines as output: warnings always, the rest with -v.
func (a *App) streamSteps() remote.CallOptions {
	steps := map[string]*Step{}
	return remote.CallOptions{
		Event: func(e protocol.Event) {
			s := steps[e.Step]
			switch e.Status {
			case protocol.StepStart:
				steps[e.Step] = a.out.Step("%s", Printable(e.Step))
			case protocol.StepProgress:
				if s != nil {
					s.Update("%s", Printable(e.Detail))
				}
			case protocol.StepDone:
				if s != nil {
					s.Done("%s", Printable(e.Detail))
				}
			case protocol.StepSkipped:
				if s != nil {
					if e.Detail == "" {
						s.Done("no change")
					} else {
						s.Done("%s; no change", Printable(e.Detail))
					}
				}
			case protocol.StepFailed:
				if s != nil {
					s.Fail()
				}
			}
		},
		Log: func(l protocol.Log) {
			switch l.Stream {
			case protocol.StreamWarning:
				a.out.Warnf("%s", Printable(l.Text))
				return
			case protocol.StreamApp:
				// The application's own output (update_fetch): always
				// shown, as the original streamed it.
				a.out.Printf("  | %s", Printable(l.Text))
				return
			}
			a.out.Debugf("  %s", Printable(l.Text))
		},
	}
}

// withTail appends the output tail an agent error carries, so the user
// sees apt's own words.
func withTail(err error) error {
	var pe *protocol.Error
	if !errors.As(err, &pe) || len(pe.Tail) == 0 {
		return err
	}
	var b strings.Builder
	b.WriteString(err.Error())
	b.WriteString("\noutput (last lines):")
	for _, l := range pe.Tail {
		b.WriteString("\n  | ")
		b.WriteString(Printable(l))
	}
	return &tailError{msg: b.String(), err: err}
}

type tailError struct {
	msg string
	err error
}

func (e *tailError) Error() string { return e.msg }
func (e *tailError) Unwrap() error { return e.err }
