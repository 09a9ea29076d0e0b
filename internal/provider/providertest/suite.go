// Package providertest holds the conformance suite every provider driver
// runs, and an in-memory driver for tests of the code above the provider
// layer.
package providertest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/toppcloud/toppcloud/internal/provider"
)

// Opt configures Run for one driver.
type Opt struct {
	// New returns a driver with valid credentials talking to a fresh fake
	// API (or a real account, for opt-in live runs).
	New func(t *testing.T) provider.Driver
	// NewBadAuth returns a driver whose credentials the API refuses. Nil
	// skips the auth test; say why in SkipBadAuth.
	NewBadAuth  func(t *testing.T) provider.Driver
	SkipBadAuth string
	// Image and Size are matchers for what to create.
	Image, Size string
	// Key is the public key line passed as AuthorizedKeys. Defaults to a
	// fixed test key.
	Key string
	// CheckKey, if set, verifies that the key reached the node (for a fake:
	// that the API got it as a key pair, personality file or user data).
	CheckKey func(t *testing.T, d provider.Driver, n provider.Node, key string)
	// Timeout bounds waiting for a node to run or disappear. Default 30s.
	Timeout time.Duration
	// DestroyLeavesTerminated is true for providers that keep listing a
	// destroyed node for a while in state terminated (EC2).
	DestroyLeavesTerminated bool
	// Address is passed as CreateRequest.Address, for drivers that
	// register servers that already exist instead of creating them
	// (existing). Such drivers offer one pseudo size, whose RAM is unknown.
	Address string
}

// TestKey is a syntactically valid ed25519 public key line for tests.
const TestKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl toppcloud-test"

// Run runs the conformance suite.
func Run(t *testing.T, o Opt) {
	t.Helper()
	if o.Key == "" {
		o.Key = TestKey
	}
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	ctx := context.Background()

	t.Run("ListImages", func(t *testing.T) {
		d := o.New(t)
		images, err := d.ListImages(ctx)
		if err != nil {
			t.Fatalf("ListImages: %v", err)
		}
		if len(images) == 0 {
			t.Fatal("ListImages returned no images")
		}
		for _, im := range images {
			if im.ID == "" || im.Name == "" {
				t.Errorf("image without id or name: %+v", im)
			}
		}
		if _, err := MatchImage(ctx, d, o.Image); err != nil {
			t.Errorf("image matcher %q: %v", o.Image, err)
		}
	})

	t.Run("ListSizes", func(t *testing.T) {
		d := o.New(t)
		sizes, err := d.ListSizes(ctx)
		if err != nil {
			t.Fatalf("ListSizes: %v", err)
		}
		if len(sizes) == 0 {
			t.Fatal("ListSizes returned no sizes")
		}
		for _, s := range sizes {
			if s.ID == "" || s.Name == "" || (s.RAMMB <= 0 && o.Address == "") {
				t.Errorf("size without id, name or RAM: %+v", s)
			}
		}
		if _, err := MatchSize(ctx, d, o.Size); err != nil {
			t.Errorf("size matcher %q: %v", o.Size, err)
		}
	})

	t.Run("GetNodeNotFound", func(t *testing.T) {
		d := o.New(t)
		_, err := d.GetNode(ctx, "does-not-exist-4711")
		if !errors.Is(err, provider.ErrNotFound) {
			t.Fatalf("GetNode(unknown) = %v, want an error wrapping ErrNotFound", err)
		}
	})

	t.Run("DestroyNotFound", func(t *testing.T) {
		d := o.New(t)
		err := d.DestroyNode(ctx, "does-not-exist-4711")
		if !errors.Is(err, provider.ErrNotFound) {
			t.Fatalf("DestroyNode(unknown) = %v, want an error wrapping ErrNotFound", err)
		}
	})

	t.Run("BadAuth", func(t *testing.T) {
		if o.NewBadAuth == nil {
			t.Skip(o.SkipBadAuth)
		}
		d := o.NewBadAuth(t)
		_, err := d.ListNodes(ctx)
		if !errors.Is(err, provider.ErrAuth) {
			t.Fatalf("ListNodes with bad credentials = %v, want an error wrapping ErrAuth", err)
		}
	})

	t.Run("Lifecycle", func(t *testing.T) {
		d := o.New(t)
		image, err := MatchImage(ctx, d, o.Image)
		if err != nil {
			t.Fatal(err)
		}
		size, err := MatchSize(ctx, d, o.Size)
		if err != nil {
			t.Fatal(err)
		}
		name := "conformance-1"
		created, err := d.CreateNode(ctx, provider.CreateRequest{Name: name, Image: image, Size: size, AuthorizedKeys: []string{o.Key}, Address: o.Address})
		if err != nil {
			t.Fatalf("CreateNode: %v", err)
		}
		if created.ID == "" {
			t.Fatal("CreateNode returned a node without an ID")
		}
		if created.Name != name {
			t.Errorf("created node name = %q, want %q", created.Name, name)
		}
		destroyed := false
		t.Cleanup(func() {
			if !destroyed {
				_ = d.DestroyNode(context.Background(), created.ID)
			}
		})

		nodes, err := d.ListNodes(ctx)
		if err != nil {
			t.Fatalf("ListNodes: %v", err)
		}
		if !slices.ContainsFunc(nodes, func(n provider.Node) bool { return n.ID == created.ID }) {
			t.Errorf("ListNodes does not include the created node %s", created.ID)
		}

		var n provider.Node
		deadline := time.Now().Add(o.Timeout)
		for {
			n, err = d.GetNode(ctx, created.ID)
			if err != nil {
				t.Fatalf("GetNode: %v", err)
			}
			if n.State == provider.StateRunning {
				break
			}
			if n.State != provider.StatePending && n.State != provider.StateUnknown {
				t.Fatalf("node went to state %s while starting", n.State)
			}
			if time.Now().After(deadline) {
				t.Fatalf("node still %s after %s", n.State, o.Timeout)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if n.Address() == "" {
			t.Errorf("running node has no address: %+v", n)
		}
		if n.Provider == "" {
			t.Errorf("node has no provider name: %+v", n)
		}
		if n.Name != name {
			t.Errorf("running node name = %q, want %q", n.Name, name)
		}
		if o.CheckKey != nil {
			o.CheckKey(t, d, n, o.Key)
		}

		if err := d.DestroyNode(ctx, created.ID); err != nil {
			t.Fatalf("DestroyNode: %v", err)
		}
		destroyed = true
		deadline = time.Now().Add(o.Timeout)
		for {
			n, err = d.GetNode(ctx, created.ID)
			if errors.Is(err, provider.ErrNotFound) {
				break
			}
			if err != nil {
				t.Fatalf("GetNode after destroy: %v", err)
			}
			if o.DestroyLeavesTerminated && n.State == provider.StateTerminated {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node still %s %s after destroy", n.State, o.Timeout)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// MatchImage lists d's images and picks the one the matcher string s
// names, as create-node does.
func MatchImage(ctx context.Context, d provider.Driver, s string) (provider.Image, error) {
	m, err := provider.ParseMatcher(s)
	if err != nil {
		return provider.Image{}, err
	}
	images, err := d.ListImages(ctx)
	if err != nil {
		return provider.Image{}, err
	}
	return provider.MatchImage(images, m)
}

// MatchSize lists d's sizes and picks the one the matcher string s
// names, as create-node does.
func MatchSize(ctx context.Context, d provider.Driver, s string) (provider.Size, error) {
	m, err := provider.ParseMatcher(s)
	if err != nil {
		return provider.Size{}, err
	}
	sizes, err := d.ListSizes(ctx)
	if err != nil {
		return provider.Size{}, err
	}
	return provider.MatchSize(sizes, m)
}
