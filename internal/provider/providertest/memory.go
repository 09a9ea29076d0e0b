package providertest

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/toppcloud/toppcloud/internal/provider"
)

// Memory is an in-memory Driver for tests of code above the provider layer
// (the CLI, WaitUntilReady). A created node is pending for PendingPolls
// calls of GetNode, then running with an address.
type Memory struct {
	mu     sync.Mutex
	nextID int
	nodes  map[string]*memNode
	// PendingPolls is how many GetNode calls a new node stays pending.
	PendingPolls int
	// FailCreate, if set, is returned by CreateNode.
	FailCreate error
	// Created records every CreateRequest, in order.
	Created []provider.CreateRequest
	// Address and SSHPort are what running nodes report (default
	// 127.0.0.1 and 22), so tests can point nodes at an in-process SSH
	// server.
	Address string
	SSHPort int
	// NeverRuns keeps nodes pending forever, to test timeouts.
	NeverRuns bool
}

type memNode struct {
	node  provider.Node
	polls int
}

var _ provider.Driver = (*Memory)(nil)

// NewMemory returns an empty Memory driver.
func NewMemory() *Memory { return &Memory{nodes: map[string]*memNode{}} }

// ListImages returns two fixed images.
func (m *Memory) ListImages(ctx context.Context) ([]provider.Image, error) {
	return []provider.Image{{ID: "img-1", Name: "debian-12"}, {ID: "img-2", Name: "ubuntu-24.04"}}, nil
}

// ListSizes returns three fixed sizes.
func (m *Memory) ListSizes(ctx context.Context) ([]provider.Size, error) {
	return []provider.Size{
		{ID: "s-1", Name: "small", RAMMB: 512, DiskGB: 10, VCPUs: 1},
		{ID: "s-2", Name: "medium", RAMMB: 1024, DiskGB: 20, VCPUs: 1},
		{ID: "s-3", Name: "large", RAMMB: 2048, DiskGB: 40, VCPUs: 2},
	}, nil
}

// ListNodes returns the nodes not destroyed.
func (m *Memory) ListNodes(ctx context.Context) ([]provider.Node, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []provider.Node
	for i := 1; i <= m.nextID; i++ {
		if n, ok := m.nodes[strconv.Itoa(i)]; ok {
			out = append(out, n.node)
		}
	}
	return out, nil
}

// GetNode advances a pending node one poll and returns it.
func (m *Memory) GetNode(ctx context.Context, id string) (provider.Node, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.nodes[id]
	if !ok {
		return provider.Node{}, fmt.Errorf("memory: node %s: %w", id, provider.ErrNotFound)
	}
	n.polls++
	if n.node.State == provider.StatePending && n.polls > m.PendingPolls && !m.NeverRuns {
		n.node.State = provider.StateRunning
		addr := m.Address
		if addr == "" {
			addr = "127.0.0.1"
		}
		n.node.PublicIPs = []string{addr}
		n.node.PrivateIPs = []string{"10.0.0." + id}
		n.node.SSHPort = m.SSHPort
	}
	return n.node, nil
}

// CreateNode records the request and adds a pending node.
func (m *Memory) CreateNode(ctx context.Context, req provider.CreateRequest) (provider.Node, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.FailCreate != nil {
		return provider.Node{}, m.FailCreate
	}
	m.Created = append(m.Created, req)
	m.nextID++
	id := strconv.Itoa(m.nextID)
	n := provider.Node{ID: id, Name: req.Name, State: provider.StatePending, Image: req.Image.ID, Size: req.Size.ID, Provider: "memory"}
	m.nodes[id] = &memNode{node: n}
	return n, nil
}

// DestroyNode forgets the node.
func (m *Memory) DestroyNode(ctx context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.nodes[id]; !ok {
		return fmt.Errorf("memory: node %s: %w", id, provider.ErrNotFound)
	}
	delete(m.nodes, id)
	return nil
}
