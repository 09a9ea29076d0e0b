package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/toppcloud/toppcloud/internal/provider"
	"github.com/toppcloud/toppcloud/internal/sshx"
	"github.com/toppcloud/toppcloud/internal/state"
)

func (a *App) listImagesCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "list-images",
		Short:   "List the images nodes can be created from",
		Long:    "List the images the provider offers. The default image (from the config section or the provider) is marked.",
		GroupID: "nodes",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := a.openProvider(cmd.Context())
			if err != nil {
				return err
			}
			images, err := p.driver.ListImages(cmd.Context())
			if err != nil {
				return fmt.Errorf("list images: %w", err)
			}
			if asJSON {
				if images == nil {
					images = []provider.Image{}
				}
				return a.out.JSON(images)
			}
			def := ""
			if m, err := provider.ParseMatcher(p.defaultImage); err == nil {
				if im, err := provider.MatchImage(images, m); err == nil {
					def = im.ID
				}
			}
			rows := make([][]string, 0, len(images))
			for _, im := range images {
				mark := ""
				if im.ID == def {
					mark = "default"
				}
				rows = append(rows, []string{im.ID, im.Name, mark, im.Note})
			}
			return a.out.Table([]string{"ID", "NAME", "DEFAULT", "NOTE"}, rows)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array of {id, name}")
	return cmd
}

func (a *App) listSizesCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "list-sizes",
		Short:   "List the sizes (flavors, plans, instance types) nodes can have",
		GroupID: "nodes",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := a.openProvider(cmd.Context())
			if err != nil {
				return err
			}
			sizes, err := p.driver.ListSizes(cmd.Context())
			if err != nil {
				return fmt.Errorf("list sizes: %w", err)
			}
			if asJSON {
				if sizes == nil {
					sizes = []provider.Size{}
				}
				return a.out.JSON(sizes)
			}
			def := ""
			if m, err := provider.ParseMatcher(p.defaultSize); err == nil {
				if sz, err := provider.MatchSize(sizes, m); err == nil {
					def = sz.ID
				}
			}
			rows := make([][]string, 0, len(sizes))
			for _, s := range sizes {
				mark, price := "", ""
				if s.ID == def {
					mark = "default"
				}
				if s.PriceMonthly > 0 {
					price = fmt.Sprintf("$%.2f/mo", s.PriceMonthly)
				}
				rows = append(rows, []string{s.ID, s.Name, strconv.Itoa(s.RAMMB), strconv.Itoa(s.DiskGB), strconv.Itoa(s.VCPUs), price, mark, s.Note})
			}
			return a.out.Table([]string{"ID", "NAME", "RAM_MB", "DISK_GB", "VCPUS", "PRICE", "DEFAULT", "NOTE"}, rows)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array of {id, name, ram_mb, disk_gb, vcpus}")
	return cmd
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
			p, err := a.openProvider(cmd.Context())
			if err != nil {
				return err
			}
			nodes, err := p.driver.ListNodes(cmd.Context())
			if err != nil {
				return fmt.Errorf("list nodes: %w", err)
			}
			for i := range nodes {
				if nodes[i].Provider == "" {
					nodes[i].Provider = p.info.Name
				}
				if nodes[i].PublicIPs == nil {
					nodes[i].PublicIPs = []string{}
				}
				if nodes[i].PrivateIPs == nil {
					nodes[i].PrivateIPs = []string{}
				}
			}
			if asJSON {
				if nodes == nil {
					nodes = []provider.Node{}
				}
				return a.out.JSON(nodes)
			}
			st, err := a.state()
			if err != nil {
				return err
			}
			known, err := st.Nodes()
			if err != nil {
				return err
			}
			isKnown := map[string]bool{}
			for _, r := range known {
				if r.Section == p.section {
					isKnown[r.ID] = true
				}
			}
			rows := make([][]string, 0, len(nodes))
			for _, n := range nodes {
				mark := ""
				if isKnown[n.ID] {
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

// createNodeOptions are create-node's flags.
type createNodeOptions struct {
	image, size   string
	ifNotExists   bool
	wait, noWait  bool
	setupNode     bool
	etcHosts      bool
	address, user string
	timeout       time.Duration
}

func (a *App) createNodeCmd() *cobra.Command {
	var o createNodeOptions
	cmd := &cobra.Command{
		Use:   "create-node HOSTNAME",
		Short: "Create a node and wait until it answers over SSH",
		Long: `Create a node named HOSTNAME with the provider of the -p section, wait until it
is running, has an address and its SSH server answers, pin its SSH host key,
and record it under ~/.toppcloud. With --setup-node, set it up as well.

Images and sizes are chosen by matchers: "id X", "name GLOB" (case-insensitive)
or "ram N" (MB), with an optional "first" to take one of several matches
("ram first 1024", "name first debian-12-*"). Defaults come from the config
section (image, size, or the legacy image_name, image_id, size_id).

For the existing provider, --address names the server you already have.`,
		GroupID: "nodes",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.createNode(cmd.Context(), args[0], o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.image, "image", "", "image matcher (default from the config section or provider)")
	f.StringVar(&o.size, "size", "", "size matcher (default from the config section or provider)")
	f.BoolVar(&o.ifNotExists, "if-not-exists", false, "succeed without creating when a node of that name exists")
	f.BoolVar(&o.wait, "wait", false, "wait until the node answers over SSH (the default; kept for compatibility)")
	f.BoolVar(&o.noWait, "no-wait", false, "return once the provider accepted the request; the host key is pinned on first connection")
	f.BoolVar(&o.setupNode, "setup-node", false, "run setup-node on the new node")
	f.BoolVar(&o.etcHosts, "etc-hosts", false, "add the node's name to /etc/hosts (also: set_etc_hosts = yes in the config section)")
	f.StringVar(&o.address, "address", "", "existing provider: the server's IP address or host name")
	f.StringVar(&o.user, "user", "", "existing provider: the user to log in as (default root; a sudo user otherwise)")
	f.DurationVar(&o.timeout, "timeout", 0, "how long to wait for each phase of readiness (default per phase: 10m running, 5m address, 5m ssh)")
	return cmd
}

func (a *App) createNode(ctx context.Context, name string, o createNodeOptions) error {
	if err := provider.ValidateHostname(name); err != nil {
		return asUsage(err)
	}
	if o.wait && o.noWait {
		return usagef("--wait and --no-wait contradict each other")
	}
	if o.setupNode && o.noWait {
		return usagef("--setup-node needs the node to answer; drop --no-wait")
	}
	for flag, m := range map[string]string{"--image": o.image, "--size": o.size} {
		if m != "" {
			if _, err := provider.ParseMatcher(m); err != nil {
				return usagef("%s: %v", flag, err)
			}
		}
	}
	p, err := a.openProvider(ctx)
	if err != nil {
		return err
	}
	keys := p.sectionKeys
	if len(keys) == 0 {
		return usagef("[provider:%s] in %s has no root_authorized_keys: new nodes would accept no key; add your public key there (toppcloud init-config writes it)", p.section, p.configPath)
	}
	st, err := a.state()
	if err != nil {
		return err
	}

	// Does a node of that name exist already? Ask both our records and
	// the provider (the account may have one we did not make).
	if rec, ok, err := st.Node(name); err != nil {
		return err
	} else if ok {
		if o.ifNotExists {
			a.out.Printf("node %s exists (provider %s, id %s); not creating it", name, rec.Section, rec.ID)
			return a.afterCreate(ctx, name, o)
		}
		return fmt.Errorf("node %s already exists (provider section %s, id %s); use --if-not-exists to accept that, or destroy-node it first", name, rec.Section, rec.ID)
	}
	existing, err := p.driver.ListNodes(ctx)
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	for _, n := range existing {
		if n.Name == name && n.State != provider.StateTerminated {
			if o.ifNotExists {
				a.out.Printf("node %s exists at the provider (id %s, %s); not creating it", name, n.ID, n.State)
				return nil
			}
			return fmt.Errorf("the provider already has a node named %s (id %s, %s); use --if-not-exists, or choose another name", name, n.ID, n.State)
		}
	}

	req := provider.CreateRequest{Name: name, AuthorizedKeys: keys, Address: o.address, User: o.user}
	if !provider.ForgetsOnly(p.driver) {
		if o.address != "" || o.user != "" {
			return usagef("--address and --user are for the existing provider only")
		}
		imgM, sizeM := p.defaultImage, p.defaultSize
		if o.image != "" {
			imgM = o.image
		}
		if o.size != "" {
			sizeM = o.size
		}
		step := a.out.Step("choose image and size")
		if req.Image, req.Size, err = chooseImageSize(ctx, p.driver, imgM, sizeM); err != nil {
			step.Fail()
			return err
		}
		step.Done("%s, %s", req.Image.Name, req.Size.Name)
	} else if o.address == "" {
		return usagef("the existing provider needs --address IP_OR_HOST")
	}

	step := a.out.Step("create node %s", name)
	node, err := p.driver.CreateNode(ctx, req)
	if err != nil {
		step.Fail()
		return fmt.Errorf("create node %s: %w", name, err)
	}
	// Record at once, so a crash from here on leaves a node that
	// destroy-node can find rather than an orphan.
	rec := state.NodeRecord{
		Name: name, Section: p.section, ProviderType: p.info.Name, ID: node.ID,
		PublicIPs: node.PublicIPs, PrivateIPs: node.PrivateIPs,
		SSHUser: node.SSHUser, SSHPort: node.SSHPort, CreatedAt: time.Now().UTC(),
	}
	if err := st.PutNode(rec); err != nil {
		step.Fail()
		a.removeHalfCreated(p, node, st, name)
		return fmt.Errorf("record node %s: %w", name, err)
	}
	step.Done("id %s", node.ID)

	if o.noWait {
		a.out.Printf("node %s requested (id %s); its host key will be pinned on first connection", name, node.ID)
		return nil
	}

	rec, err = a.waitAndPin(ctx, p, rec, o.timeout)
	if err != nil {
		// Ctrl-C or a node that never came up: remove what we made so the
		// account is not left with a half-created node.
		switch {
		case errors.Is(err, context.Canceled):
			a.out.Warnf("interrupted; removing node %s so nothing is left half-created", name)
		case provider.ForgetsOnly(p.driver):
			a.out.Warnf("cannot use %s at %s as user %s; not registering it (check the address, add your key to the server, or pass --user)", name, o.address, userOr(o.user))
		default:
			a.out.Warnf("node %s did not become ready; destroying it", name)
		}
		a.removeHalfCreated(p, node, st, name)
		return err
	}
	if err := a.applyEtcHosts(p, o.etcHosts, rec); err != nil {
		return err
	}
	a.out.Printf("node %s is ready: ssh %s@%s (known_hosts: %s)", name, userOr(rec.SSHUser), rec.Address(), st.KnownHostsPath())
	return a.afterCreate(ctx, name, o)
}

// afterCreate runs what create-node chains to.
func (a *App) afterCreate(ctx context.Context, name string, o createNodeOptions) error {
	if o.setupNode {
		return a.setupNode(ctx, name, setupOptions{})
	}
	return nil
}

func userOr(u string) string {
	if u == "" {
		return "root"
	}
	return u
}

// removeHalfCreated destroys a node whose creation did not finish and
// forgets it. It uses a fresh context: the command's may be cancelled
// (Ctrl-C), and cleaning up is exactly what must still happen then.
func (a *App) removeHalfCreated(p *openedProvider, node provider.Node, st *state.Store, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := p.driver.DestroyNode(ctx, node.ID); err != nil && !errors.Is(err, provider.ErrNotFound) {
		a.out.Warnf("could not destroy half-created node %s (id %s): %v; destroy it by hand or run: toppcloud destroy-node -p %s %s", name, node.ID, err, p.section, name)
		return
	}
	if _, err := st.DeleteNode(name); err != nil {
		a.out.Warnf("forget node %s: %v", name, err)
	}
}

// waitAndPin waits for the node to answer over SSH, pins its host key and
// updates the record. It also checks that our key logs in, so problems
// with keys show up now and not at setup-node.
func (a *App) waitAndPin(ctx context.Context, p *openedProvider, rec state.NodeRecord, timeout time.Duration) (state.NodeRecord, error) {
	step := a.out.Step("wait for node %s", rec.Name)
	wo := provider.WaitOptions{
		ProbeHostKey: sshx.ProbeHostKey,
		Progress: func(pr provider.Progress) {
			if pr.Detail != "" {
				step.Update("%s: %s", pr.Phase, pr.Detail)
			} else {
				step.Update("%s", pr.Phase)
			}
		},
	}
	if timeout > 0 {
		wo.RunningTimeout, wo.AddressTimeout, wo.SSHTimeout = timeout, timeout, timeout
	}
	node, hostKey, err := provider.WaitUntilReady(ctx, p.driver, rec.ID, wo)
	if err != nil {
		step.Fail()
		return rec, fmt.Errorf("wait for node %s: %w", rec.Name, err)
	}
	rec.PublicIPs, rec.PrivateIPs = node.PublicIPs, node.PrivateIPs
	if node.SSHUser != "" {
		rec.SSHUser = node.SSHUser
	}
	if node.SSHPort != 0 {
		rec.SSHPort = node.SSHPort
	}
	rec.HostKey = hostKey
	st, err := a.state()
	if err != nil {
		step.Fail()
		return rec, err
	}
	kh := sshx.KnownHosts{Path: st.KnownHostsPath()}
	if err := kh.Pin(rec.SSHAddr(), hostKey); err != nil {
		step.Fail()
		return rec, fmt.Errorf("pin host key of %s: %w", rec.Name, err)
	}
	if err := st.PutNode(rec); err != nil {
		step.Fail()
		return rec, fmt.Errorf("record node %s: %w", rec.Name, err)
	}
	step.Done("%s, host key %s", rec.Address(), sshx.Fingerprint(hostKey))

	step = a.out.Step("log in to %s as %s", rec.Name, userOr(rec.SSHUser))
	c, err := a.dialNode(ctx, rec, 30*time.Second)
	if err != nil {
		step.Fail()
		return rec, err
	}
	defer c.Close()
	if _, err := c.Output(ctx, []string{"true"}, nil); err != nil {
		step.Fail()
		return rec, fmt.Errorf("run a command on %s: %w", rec.Name, err)
	}
	if userOr(rec.SSHUser) != "root" {
		// setup-node needs root; a non-root login must have passwordless
		// sudo, and it is kinder to say so now than halfway through setup.
		if _, err := c.Output(ctx, []string{"sudo", "-n", "true"}, nil); err != nil {
			step.Fail()
			return rec, fmt.Errorf("%s can log in to %s but cannot run sudo without a password (%v); give it passwordless sudo or use root", rec.SSHUser, rec.Name, err)
		}
	}
	step.Done("")
	return rec, nil
}

// dialNode connects to a recorded node with the user's keys, refusing
// any host key but the pinned one.
func (a *App) dialNode(ctx context.Context, rec state.NodeRecord, retryFor time.Duration) (*sshx.Client, error) {
	st, err := a.state()
	if err != nil {
		return nil, err
	}
	kh := sshx.KnownHosts{Path: st.KnownHostsPath()}
	policy := kh.Strict()
	if rec.HostKey == "" {
		// Created with --no-wait, or recorded by an older toppcloud:
		// pin what the node shows the first time.
		policy = kh.PinOnFirstUse()
	}
	return sshx.Dial(ctx, sshx.Config{
		Addr:     rec.SSHAddr(),
		User:     userOr(rec.SSHUser),
		Auth:     sshx.Auth{KeyFiles: sshx.DefaultKeyFiles(a.home), UseAgent: true},
		HostKeys: policy,
		RetryFor: retryFor,
	})
}

func chooseImageSize(ctx context.Context, d provider.Driver, imgM, sizeM string) (provider.Image, provider.Size, error) {
	im, err := provider.ParseMatcher(imgM)
	if err != nil {
		return provider.Image{}, provider.Size{}, asUsage(fmt.Errorf("image: %w", err))
	}
	sm, err := provider.ParseMatcher(sizeM)
	if err != nil {
		return provider.Image{}, provider.Size{}, asUsage(fmt.Errorf("size: %w", err))
	}
	images, err := d.ListImages(ctx)
	if err != nil {
		return provider.Image{}, provider.Size{}, fmt.Errorf("list images: %w", err)
	}
	image, err := provider.MatchImage(images, im)
	if err != nil {
		return provider.Image{}, provider.Size{}, asUsage(err)
	}
	sizes, err := d.ListSizes(ctx)
	if err != nil {
		return provider.Image{}, provider.Size{}, fmt.Errorf("list sizes: %w", err)
	}
	size, err := provider.MatchSize(sizes, sm)
	if err != nil {
		return provider.Image{}, provider.Size{}, asUsage(err)
	}
	return image, size, nil
}

// applyEtcHosts adds the node's name to the hosts file when asked to.
func (a *App) applyEtcHosts(p *openedProvider, flag bool, rec state.NodeRecord) error {
	want := flag || p.setEtcHosts
	if !want || rec.Address() == "" {
		return nil
	}
	if _, err := state.SetHost(a.etcHosts, rec.Address(), rec.Name); err != nil {
		return fmt.Errorf("add %s to %s: %w (run as root, or drop --etc-hosts / set_etc_hosts)", rec.Name, a.etcHosts, err)
	}
	rec.EtcHosts = true
	st, err := a.state()
	if err != nil {
		return err
	}
	if err := st.PutNode(rec); err != nil {
		return err
	}
	a.out.Printf("added %s %s to %s", rec.Address(), rec.Name, a.etcHosts)
	return nil
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
				if err := a.destroyNode(cmd.Context(), n); err != nil {
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

func (a *App) destroyNode(ctx context.Context, name string) error {
	st, err := a.state()
	if err != nil {
		return err
	}
	rec, known, err := st.Node(name)
	if err != nil {
		return err
	}
	// A recorded node is destroyed through the section that made it, not
	// whatever -p says now.
	section := a.providerName
	if known {
		section = rec.Section
	}
	p, err := a.openProviderSection(ctx, section)
	if err != nil {
		return err
	}
	id := rec.ID
	if !known {
		nodes, err := p.driver.ListNodes(ctx)
		if err != nil {
			return fmt.Errorf("list nodes: %w", err)
		}
		var matches []provider.Node
		for _, n := range nodes {
			if n.Name == name && n.State != provider.StateTerminated {
				matches = append(matches, n)
			}
		}
		switch len(matches) {
		case 0:
			a.out.Warnf("no node named %s (provider section %s); nothing to destroy", name, section)
			return nil
		case 1:
			id = matches[0].ID
		default:
			return fmt.Errorf("%d nodes are named %s at provider section %s; destroy them in the provider's console", len(matches), name, section)
		}
	}
	if !a.confirm(fmt.Sprintf("Destroy node %s (provider section %s, id %s)?", name, section, id)) {
		return fmt.Errorf("not destroying %s", name)
	}
	step := a.out.Step("destroy node %s", name)
	if err := p.driver.DestroyNode(ctx, id); err != nil {
		if !errors.Is(err, provider.ErrNotFound) {
			step.Fail()
			return fmt.Errorf("destroy node %s: %w", name, err)
		}
		step.Update("already gone at the provider")
	}
	if provider.ForgetsOnly(p.driver) {
		step.Done("forgotten; the server itself was not touched")
	} else {
		step.Done("")
	}
	if known {
		kh := sshx.KnownHosts{Path: st.KnownHostsPath()}
		if _, err := kh.Forget(rec.SSHAddr()); err != nil {
			a.out.Warnf("forget host key of %s: %v", name, err)
		}
		if rec.EtcHosts {
			if _, err := state.RemoveHost(a.etcHosts, name); err != nil {
				a.out.Warnf("remove %s from %s: %v", name, a.etcHosts, err)
			}
		}
		if _, err := st.DeleteNode(name); err != nil {
			return fmt.Errorf("forget node %s: %w", name, err)
		}
	}
	return nil
}

func (a *App) startNodeCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "start-node HOSTNAME",
		Short:   "Start a stopped node (for example local nodes after the host rebooted)",
		GroupID: "nodes",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.startStopNode(cmd.Context(), args[0], true)
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
			return a.startStopNode(cmd.Context(), args[0], false)
		},
	}
}

func (a *App) startStopNode(ctx context.Context, name string, start bool) error {
	st, err := a.state()
	if err != nil {
		return err
	}
	rec, ok, err := st.Node(name)
	if err != nil {
		return err
	}
	if !ok {
		return usagef("no node named %s in %s; list-nodes shows the provider's nodes", name, st.Dir())
	}
	p, err := a.openProviderSection(ctx, rec.Section)
	if err != nil {
		return err
	}
	if start {
		s, ok := p.driver.(provider.Starter)
		if !ok {
			return fmt.Errorf("start node %s: provider %s: %w", name, p.info.Name, provider.ErrNotSupported)
		}
		step := a.out.Step("start node %s", name)
		if err := s.StartNode(ctx, rec.ID); err != nil {
			step.Fail()
			return fmt.Errorf("start node %s: %w", name, err)
		}
		step.Done("")
		// The host key must be the pinned one: WaitUntilReady only waits
		// for sshd here, dialNode checks the key.
		wstep := a.out.Step("wait for node %s", name)
		_, _, err := provider.WaitUntilReady(ctx, p.driver, rec.ID, provider.WaitOptions{ProbeHostKey: sshx.ProbeHostKey})
		if err != nil {
			wstep.Fail()
			return err
		}
		c, err := a.dialNode(ctx, rec, 30*time.Second)
		if err != nil {
			wstep.Fail()
			return err
		}
		c.Close()
		wstep.Done("")
		return nil
	}
	s, ok := p.driver.(provider.Stopper)
	if !ok {
		return fmt.Errorf("stop node %s: provider %s: %w", name, p.info.Name, provider.ErrNotSupported)
	}
	step := a.out.Step("stop node %s", name)
	if err := s.StopNode(ctx, rec.ID); err != nil {
		step.Fail()
		return fmt.Errorf("stop node %s: %w", name, err)
	}
	step.Done("")
	return nil
}

// localUser names who runs the client, for records on nodes.
func localUser() string {
	if u, err := user.Current(); err == nil {
		h, _ := os.Hostname()
		return u.Username + "@" + h
	}
	return "unknown"
}
