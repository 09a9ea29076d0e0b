package protocol

import "time"

// InstallAgentArgs describes the binary that follows the request line on
// stdin.
type InstallAgentArgs struct {
	// Size and SHA256 are those of the binary itself (after decoding);
	// the agent refuses anything else.
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Encoding is "gzip", "zstd" (agents of protocol 2 on) or "" (raw
	// bytes). A stream of several gzip members or zstd frames is one
	// binary.
	Encoding string `json:"encoding,omitempty"`
}

// InstallAgentResult is the result of OpInstallAgent.
type InstallAgentResult struct {
	// Changed is false when the installed binary was already this one.
	Changed     bool   `json:"changed"`
	Fingerprint string `json:"fingerprint"`
}

// SetupArgs are OpSetup's arguments.
type SetupArgs struct {
	// Name is the node's name in the client's records.
	Name string `json:"name,omitempty"`
	// AuthorizedKeys are public keys (authorized_keys lines) that may log
	// in as DeployUser. They are added to the ones it has; none is
	// removed.
	AuthorizedKeys []string `json:"authorized_keys"`
	// SSHPort is the port the client reached sshd on; the firewall keeps
	// it open besides 22.
	SSHPort int `json:"ssh_port,omitempty"`
	// TLS is how the node gets certificates for https locations (the
	// provider section's acme_* settings). nil keeps what the node has.
	TLS *TLSSettings `json:"tls,omitempty"`
	// Site is the node's role in a site; nil makes it a node of its own
	// (apps and their services on the node).
	Site *SiteRole `json:"site,omitempty"`
}

// TLSSettings are how a node's front server gets certificates. They are
// node-wide and travel with setup-node, not with each deploy: every https
// location of the node shares one CA account and one storage, and a deploy
// must not switch them as a side effect.
type TLSSettings struct {
	// Issuer is IssuerACME or IssuerInternal.
	Issuer string `json:"issuer"`
	// ACMEEmail is given to the ACME CA (expiry notices); "" for none.
	ACMEEmail string `json:"acme_email,omitempty"`
	// ACMECA is the ACME directory URL; "" is Let's Encrypt.
	ACMECA string `json:"acme_ca,omitempty"`
	// ACMECARoot is PEM certificates to trust for the ACME server itself
	// (a private CA); "" trusts the node's system roots.
	ACMECARoot string `json:"acme_ca_root,omitempty"`
}

// NodeCAResult is OpNodeCA's result.
type NodeCAResult struct {
	// RootPEM is the internal CA's root certificate. Caddy makes the CA
	// when it first needs it: an error with CodeNotFound means no https
	// location has used the internal CA yet.
	RootPEM string `json:"root_pem"`
}

// SetupResult is OpSetup's result.
type SetupResult struct {
	// Changed names the steps that changed the node; empty when the node
	// was already set up.
	Changed []string `json:"changed"`
	// Node is the content of /etc/toppcloud/node.json after the run.
	Node NodeInfo `json:"node"`
}

// NodeInfoFormat is the version of the NodeInfo file format.
const NodeInfoFormat = 1

// NodeInfo is /etc/toppcloud/node.json: what the last setup-node that
// changed something did.
type NodeInfo struct {
	Format      int    `json:"format"`
	Name        string `json:"name,omitempty"`
	Version     string `json:"version"`
	Protocol    int    `json:"protocol"`
	Fingerprint string `json:"fingerprint"`
	// FirstSetupAt is when setup-node first completed on this node.
	FirstSetupAt time.Time `json:"first_setup_at"`
	// SetupAt is when setup-node last changed something.
	SetupAt time.Time `json:"setup_at"`
	// SetupBy is Request.LocalUser of that run.
	SetupBy string `json:"setup_by,omitempty"`
	OS      OSInfo `json:"os"`
	// Packages maps each package of the node's set to its installed
	// version.
	Packages map[string]string `json:"packages"`
	// Changed names the steps that run changed.
	Changed []string `json:"changed"`
}

// OSInfo is what /etc/os-release says.
type OSInfo struct {
	ID         string `json:"id"`
	VersionID  string `json:"version_id"`
	PrettyName string `json:"pretty_name"`
}

// InfoResult is OpInfo's result.
type InfoResult struct {
	Agent VersionInfo `json:"agent"`
	// Node is nil when setup-node never completed on the node.
	Node *NodeInfo `json:"node,omitempty"`
}
