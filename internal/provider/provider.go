// Package provider defines how toppcloud talks to the places nodes come
// from: the Driver interface every backend implements, the node, image and
// size types they return, a registry of backends, and the behaviour that is
// the same for every backend (matching images and sizes, waiting until a new
// node is ready).
//
// A backend lives in its own package under internal/provider/NAME and
// registers itself from init with Register. internal/provider/all imports
// every backend that ships.
package provider

import (
	"context"
	"io"
	"net/http"
	"time"
)

// Driver is what every backend must do. Methods take a context first and
// return errors wrapping this package's sentinels (ErrNotFound, ErrAuth,
// ErrNotSupported, ...) where one applies, so callers never inspect a
// backend's own error types.
//
// Extras that only some backends have are separate one-method interfaces
// (Starter, Stopper), found by type assertion.
type Driver interface {
	// ListImages returns the images a node can be created from.
	ListImages(ctx context.Context) ([]Image, error)
	// ListSizes returns the sizes (flavors, plans, instance types) offered.
	ListSizes(ctx context.Context) ([]Size, error)
	// ListNodes returns every server of the account (in the configured
	// region), not only those toppcloud created.
	ListNodes(ctx context.Context) ([]Node, error)
	// GetNode returns one node by its provider ID. A node that does not
	// exist gives an error wrapping ErrNotFound.
	GetNode(ctx context.Context, id string) (Node, error)
	// CreateNode starts creating a node and returns as soon as the provider
	// has accepted the request; the node may still be pending. The driver
	// must arrange for req.AuthorizedKeys to end up in root's (or the
	// driver's login user's) authorized_keys; how is its own business.
	// On error nothing may be left behind that the caller must clean up.
	CreateNode(ctx context.Context, req CreateRequest) (Node, error)
	// DestroyNode destroys the node with the given provider ID. Destroying
	// a node that is already gone returns an error wrapping ErrNotFound.
	DestroyNode(ctx context.Context, id string) error
}

// Starter is implemented by drivers that can start a stopped node.
type Starter interface {
	StartNode(ctx context.Context, id string) error
}

// Stopper is implemented by drivers that can stop a running node without
// destroying it.
type Stopper interface {
	StopNode(ctx context.Context, id string) error
}

// Forgetter is implemented by drivers that register servers which exist
// elsewhere (existing) instead of creating them: for them DestroyNode only
// forgets, and ForgetsOnly returns true.
type Forgetter interface {
	ForgetsOnly() bool
}

// ForgetsOnly reports whether destroying a node of d only forgets it.
func ForgetsOnly(d Driver) bool {
	f, ok := d.(Forgetter)
	return ok && f.ForgetsOnly()
}

// CreateRequest describes a node to create.
type CreateRequest struct {
	// Name is the node's hostname; it has already passed ValidateHostname.
	Name string
	// Image and Size are the chosen entries from ListImages and ListSizes.
	// Drivers that take no image or size (existing) ignore them.
	Image Image
	Size  Size
	// AuthorizedKeys are public key lines (authorized_keys format) that
	// must be able to log in as the node's SSH user.
	AuthorizedKeys []string
	// Files are extra files to place on the node at creation, by absolute
	// path. Drivers that cannot place files return ErrNotSupported when
	// Files is not empty.
	Files map[string][]byte
	// Address is the host name or IP of a server that already exists;
	// used only by drivers that register servers instead of creating them.
	Address string
	// User is the login user for drivers where it is chosen at creation
	// (existing); empty means root.
	User string
}

// Node is a server as a provider reports it.
type Node struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	State      State    `json:"state"`
	PublicIPs  []string `json:"public_ips"`
	PrivateIPs []string `json:"private_ips"`
	Image      string   `json:"image"`
	Size       string   `json:"size"`
	Provider   string   `json:"provider"`
	// SSHUser is the user toppcloud logs in as; empty means root.
	SSHUser string `json:"ssh_user,omitempty"`
	// SSHPort is the port sshd listens on; 0 means 22.
	SSHPort int `json:"ssh_port,omitempty"`
}

// Address returns the address toppcloud should connect to: the first
// public IP, else the first private one, else "".
func (n Node) Address() string {
	if len(n.PublicIPs) > 0 {
		return n.PublicIPs[0]
	}
	if len(n.PrivateIPs) > 0 {
		return n.PrivateIPs[0]
	}
	return ""
}

// Image is something a node can be created from.
type Image struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Note is extra human-readable information ("not built yet").
	Note string `json:"note,omitempty"`
	// Created is when the image was made, if the API says; a "first"
	// matcher prefers the newest.
	Created time.Time `json:"created,omitempty"`
}

// Size is a hardware choice: flavor, plan, instance type.
type Size struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	RAMMB  int    `json:"ram_mb"`
	DiskGB int    `json:"disk_gb"`
	VCPUs  int    `json:"vcpus"`
	// PriceMonthly is in US dollars when the API gives a price, else 0.
	PriceMonthly float64 `json:"price_monthly,omitempty"`
	// Note is extra human-readable information ("memory limit not enforced").
	Note string `json:"note,omitempty"`
}

// Env is what a driver constructor gets: its settings and the plumbing the
// CLI decides on. Drivers never read the config file or flags themselves.
type Env struct {
	// Section is the config section name ("default" for [provider:default]).
	Section string
	// Settings holds the section's values and environment fallbacks for
	// the options the driver declared; see Settings.
	Settings Settings
	// HTTPClient is the client API calls must go through (it carries
	// --debug-api logging and timeouts). Never nil when given to New.
	HTTPClient *http.Client
	// Log receives human-oriented diagnostics at -v; may be io.Discard.
	Log io.Writer
	// StateDir is a directory the driver may keep its own files in
	// (~/.toppcloud/providers/SECTION).
	StateDir string
}
