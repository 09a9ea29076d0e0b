package nodes

import (
	"context"
	"errors"
	"fmt"

	"github.com/toppcloud/toppcloud/internal/provider"
	"github.com/toppcloud/toppcloud/internal/sshx"
	"github.com/toppcloud/toppcloud/internal/state"
	"github.com/toppcloud/toppcloud/internal/usage"
)

// Destroy destroys node name at its provider and forgets it: its record,
// its pinned host key and its /etc/hosts lines. A recorded node is
// destroyed through the section that made it; an unrecorded one is looked
// for by name in section. confirm is asked before anything is destroyed.
// A name that exists nowhere is a warning, not an error.
func (s *Session) Destroy(ctx context.Context, section, name string, confirm func(question string) bool) error {
	st, err := s.State()
	if err != nil {
		return err
	}
	rec, known, err := st.Node(name)
	if err != nil {
		return err
	}
	if known {
		section = rec.Section
	}
	p, err := s.OpenProvider(ctx, section)
	if err != nil {
		return err
	}
	id := rec.ID
	if !known {
		nodes, err := p.Driver.ListNodes(ctx)
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
			s.o.Report.Warnf("no node named %s (provider section %s); nothing to destroy", name, section)
			return nil
		case 1:
			id = matches[0].ID
		default:
			return fmt.Errorf("%d nodes are named %s at provider section %s; destroy them in the provider's console", len(matches), name, section)
		}
	}
	if !confirm(fmt.Sprintf("Destroy node %s (provider section %s, id %s)?", name, section, id)) {
		return fmt.Errorf("not destroying %s", name)
	}
	step := s.o.Report.Step("destroy node %s", name)
	if err := p.Driver.DestroyNode(ctx, id); err != nil {
		if !errors.Is(err, provider.ErrNotFound) {
			step.Fail()
			return fmt.Errorf("destroy node %s: %w", name, err)
		}
		step.Update("already gone at the provider")
	}
	if provider.ForgetsOnly(p.Driver) {
		step.Done("forgotten; the server itself was not touched")
	} else {
		step.Done("")
	}
	if !known {
		return nil
	}
	if c, ok := s.conns[connKey{name, rec.User()}]; ok {
		c.Close()
		delete(s.conns, connKey{name, rec.User()})
	}
	kh := sshx.KnownHosts{Path: st.KnownHostsPath()}
	if _, err := kh.Forget(rec.SSHAddr()); err != nil {
		s.o.Report.Warnf("forget host key of %s: %v", name, err)
	}
	if rec.EtcHosts {
		if _, err := state.RemoveHost(s.o.EtcHosts, name); err != nil {
			s.o.Report.Warnf("remove %s from %s: %v", name, s.o.EtcHosts, err)
		}
	}
	if _, err := st.DeleteNode(name); err != nil {
		return fmt.Errorf("forget node %s: %w", name, err)
	}
	return nil
}

// act runs an action only some drivers have (start, stop) on recorded
// node name, through the section that made it, as a step.
func (s *Session) act(ctx context.Context, verb, name string, action func(provider.Driver) (func(context.Context, string) error, bool)) (state.NodeRecord, *Provider, error) {
	st, err := s.State()
	if err != nil {
		return state.NodeRecord{}, nil, err
	}
	rec, ok, err := st.Node(name)
	if err != nil {
		return rec, nil, err
	}
	if !ok {
		return rec, nil, usage.Errorf("no node named %s in %s; list-nodes shows the provider's nodes", name, st.Dir())
	}
	p, err := s.OpenProvider(ctx, rec.Section)
	if err != nil {
		return rec, nil, err
	}
	do, ok := action(p.Driver)
	if !ok {
		return rec, nil, fmt.Errorf("%s node %s: provider %s: %w", verb, name, p.Info.Name, provider.ErrNotSupported)
	}
	step := s.o.Report.Step("%s node %s", verb, name)
	if err := do(ctx, rec.ID); err != nil {
		step.Fail()
		return rec, nil, fmt.Errorf("%s node %s: %w", verb, name, err)
	}
	step.Done("")
	return rec, p, nil
}

// Start starts a stopped node and waits until it answers with its pinned
// host key.
func (s *Session) Start(ctx context.Context, name string) error {
	rec, p, err := s.act(ctx, "start", name, func(d provider.Driver) (func(context.Context, string) error, bool) {
		st, ok := d.(provider.Starter)
		if !ok {
			return nil, false
		}
		return st.StartNode, true
	})
	if err != nil {
		return err
	}
	// The host key must be the pinned one: WaitUntilReady only waits for
	// sshd here, dial checks the key.
	step := s.o.Report.Step("wait for node %s", name)
	if _, _, err := provider.WaitUntilReady(ctx, p.Driver, rec.ID, provider.WaitOptions{ProbeHostKey: sshx.ProbeHostKey}); err != nil {
		step.Fail()
		return err
	}
	if _, err := s.dial(ctx, rec, "", verifyRetry); err != nil {
		step.Fail()
		return err
	}
	step.Done("")
	return nil
}

// Stop stops a node without destroying it.
func (s *Session) Stop(ctx context.Context, name string) error {
	_, _, err := s.act(ctx, "stop", name, func(d provider.Driver) (func(context.Context, string) error, bool) {
		st, ok := d.(provider.Stopper)
		if !ok {
			return nil, false
		}
		return st.StopNode, true
	})
	return err
}
