package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/toppcloud/toppcloud/internal/nodes"
	"github.com/toppcloud/toppcloud/internal/provider"
)

// catalog is a list the provider offers and create-node chooses from with
// a matcher: list-images and list-sizes.
type catalog[T any] struct {
	use, short, long, jsonHelp string
	// list returns the items and the ID of the default one.
	list   func(context.Context, *nodes.Provider) ([]T, string, error)
	header []string
	// row is an item's table row; def says it is the default.
	row func(item T, def bool) []string
	id  func(T) string
}

func catalogCmd[T any](a *App, c catalog[T]) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     c.use,
		Short:   c.short,
		Long:    c.long,
		GroupID: "nodes",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := a.nodes().OpenProvider(cmd.Context(), a.providerName)
			if err != nil {
				return err
			}
			items, def, err := c.list(cmd.Context(), p)
			if err != nil {
				return err
			}
			if asJSON {
				if items == nil {
					items = []T{}
				}
				return a.out.JSON(items)
			}
			rows := make([][]string, 0, len(items))
			for _, it := range items {
				rows = append(rows, c.row(it, def != "" && c.id(it) == def))
			}
			return a.out.Table(c.header, rows)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, c.jsonHelp)
	return cmd
}

// defaultMark is the DEFAULT column.
func defaultMark(def bool) string {
	if def {
		return "default"
	}
	return ""
}

func (a *App) listImagesCmd() *cobra.Command {
	return catalogCmd(a, catalog[provider.Image]{
		use:      "list-images",
		short:    "List the images nodes can be created from",
		long:     "List the images the provider offers. The default image (from the config section or the provider) is marked.",
		jsonHelp: "print a JSON array of {id, name}",
		list:     func(ctx context.Context, p *nodes.Provider) ([]provider.Image, string, error) { return p.Images(ctx) },
		header:   []string{"ID", "NAME", "DEFAULT", "NOTE"},
		row: func(im provider.Image, def bool) []string {
			return []string{im.ID, im.Name, defaultMark(def), im.Note}
		},
		id: func(im provider.Image) string { return im.ID },
	})
}

func (a *App) listSizesCmd() *cobra.Command {
	return catalogCmd(a, catalog[provider.Size]{
		use:      "list-sizes",
		short:    "List the sizes (flavors, plans, instance types) nodes can have",
		jsonHelp: "print a JSON array of {id, name, ram_mb, disk_gb, vcpus}",
		list:     func(ctx context.Context, p *nodes.Provider) ([]provider.Size, string, error) { return p.Sizes(ctx) },
		header:   []string{"ID", "NAME", "RAM_MB", "DISK_GB", "VCPUS", "PRICE", "DEFAULT", "NOTE"},
		row: func(s provider.Size, def bool) []string {
			price := ""
			if s.PriceMonthly > 0 {
				price = fmt.Sprintf("$%.2f/mo", s.PriceMonthly)
			}
			return []string{s.ID, s.Name, strconv.Itoa(s.RAMMB), strconv.Itoa(s.DiskGB), strconv.Itoa(s.VCPUs), price, defaultMark(def), s.Note}
		},
		id: func(s provider.Size) string { return s.ID },
	})
}

func (a *App) listNodesCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list-nodes",
		Short: "List every node of the provider account",
		Long: `List every server the provider account has (in the configured region), not only
the ones toppcloud created. Nodes toppcloud knows (created or registered from
this machine) are marked.`,
		GroupID: "nodes",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			s := a.nodes()
			p, err := s.OpenProvider(cmd.Context(), a.providerName)
			if err != nil {
				return err
			}
			list, err := p.Nodes(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return a.out.JSON(list)
			}
			known, err := s.KnownIDs(p.Section)
			if err != nil {
				return err
			}
			rows := make([][]string, 0, len(list))
			for _, n := range list {
				mark := ""
				if known[n.ID] {
					mark = "yes"
				}
				rows = append(rows, []string{n.Name, n.State.String(), strings.Join(n.PublicIPs, ","), strings.Join(n.PrivateIPs, ","), n.Size, n.Image, n.ID, mark})
			}
			return a.out.Table([]string{"NAME", "STATE", "PUBLIC_IPS", "PRIVATE_IPS", "SIZE", "IMAGE", "ID", "KNOWN"}, rows)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array of {id, name, state, public_ips, private_ips, image, size, provider}")
	return cmd
}

func (a *App) createNodeCmd() *cobra.Command {
	var o nodes.CreateOptions
	var wait bool
	cmd := &cobra.Command{
		Use:   "create-node HOSTNAME",
		Short: "Create a node and wait until it answers over SSH",
		Long: `Create a node named HOSTNAME with the provider of the -p section, wait until it
is running, has an address and its SSH server answers, pin its host key,
check that your key logs in, and record it under ~/.toppcloud. With
--setup-node, set it up as well, over the same connection.

Images and sizes are chosen by matchers: "id X", "name GLOB" (case-insensitive)
or "ram N" (MB), with an optional "first" to take one of several matches
("ram first 1024", "name first debian-12-*"). Defaults come from the config
section (image, size, or the legacy image_name, image_id, size_id).

With --if-not-exists, a node of that name that this client knows is
accepted (and waited for, if it was created with --no-wait); one that only
the provider knows is accepted too, but cannot be set up from here.

For the existing provider, --address names the server you already have.`,
		GroupID: "nodes",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if wait && o.NoWait {
				return usagef("--wait and --no-wait contradict each other")
			}
			o.SetupOptions.Events = a.streamSteps()
			ctx, name := cmd.Context(), args[0]
			// The site sections name existing nodes only, so a section
			// naming this one reads only once it exists: then the node
			// is set up for its role there (which needs its address),
			// over a second connection.
			if _, err := a.nodes().Sites(ctx); err == nil || !o.Setup {
				return withTail(a.nodes().Create(ctx, a.providerName, name, o))
			}
			o.Setup = false
			if err := a.nodes().Create(ctx, a.providerName, name, o); err != nil {
				return withTail(err)
			}
			role, err := a.siteRole(ctx, name)
			if err != nil {
				return fmt.Errorf("created %s but did not set it up: %w (once every node of the site exists: setup-node --site NAME)", name, err)
			}
			so := o.SetupOptions
			so.Site = role
			return withTail(a.nodes().Setup(ctx, name, so))
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Image, "image", "", "image matcher (default from the config section or provider)")
	f.StringVar(&o.Size, "size", "", "size matcher (default from the config section or provider)")
	f.BoolVar(&o.IfNotExists, "if-not-exists", false, "succeed without creating when a node of that name exists")
	f.BoolVar(&wait, "wait", false, "wait until the node answers over SSH (the default; kept for compatibility)")
	f.BoolVar(&o.NoWait, "no-wait", false, "return once the provider accepted the request; the host key is pinned on first connection")
	f.BoolVar(&o.Setup, "setup-node", false, "run setup-node on the new node")
	f.BoolVar(&o.EtcHosts, "etc-hosts", false, "add the node's name to /etc/hosts (also: set_etc_hosts = yes in the config section)")
	f.StringVar(&o.Address, "address", "", "existing provider: the server's IP address or host name")
	f.StringVar(&o.User, "user", "", "existing provider: the user to log in as (default root; a sudo user otherwise)")
	f.DurationVar(&o.Timeout, "timeout", 0, "how long to wait for each phase of readiness (default per phase: 10m running, 5m address, 5m ssh)")
	return cmd
}

func (a *App) destroyNodeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "destroy-node HOSTNAME...",
		Short: "Destroy nodes and forget them",
		Long: `Destroy each named node at its provider and forget it: its record, its pinned
host key and its /etc/hosts lines. A name that does not exist is a warning.
For the existing provider the server is only forgotten, never touched.`,
		GroupID: "nodes",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, n := range args {
				if err := provider.ValidateHostname(n); err != nil {
					return asUsage(err)
				}
			}
			var failed []string
			for _, n := range args {
				if err := a.nodes().Destroy(cmd.Context(), a.providerName, n, a.confirm); err != nil {
					if errors.Is(err, context.Canceled) {
						return err
					}
					a.out.Warnf("%v", err)
					failed = append(failed, n)
				}
			}
			if len(failed) > 0 {
				return fmt.Errorf("could not destroy %s", strings.Join(failed, ", "))
			}
			return nil
		},
	}
	return cmd
}

func (a *App) startNodeCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "start-node HOSTNAME",
		Short:   "Start a stopped node (for example local nodes after the host rebooted)",
		GroupID: "nodes",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if err := a.nodes().Start(ctx, args[0]); err != nil {
				return err
			}
			// An app node of a site with a balancer goes back in once
			// it answers the balancer's health checks.
			if r := a.siteAppNode(ctx, args[0]); r != nil {
				return r.PutBack(ctx, args[0])
			}
			return nil
		},
	}
}

func (a *App) stopNodeCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "stop-node HOSTNAME",
		Short:   "Stop a node without destroying it",
		GroupID: "nodes",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			// An app node of a site with a balancer leaves it first, and
			// its requests in flight finish.
			if r := a.siteAppNode(ctx, args[0]); r != nil {
				if err := r.TakeOut(ctx, args[0]); err != nil {
					return fmt.Errorf("stop-node %s: %w (the node was not stopped)", args[0], err)
				}
			}
			return a.nodes().Stop(ctx, args[0])
		},
	}
}

// localUser names who runs the client, for records on nodes.
func localUser() string {
	if u, err := user.Current(); err == nil {
		h, _ := os.Hostname()
		return u.Username + "@" + h
	}
	return "unknown"
}
