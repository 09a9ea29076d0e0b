// Package all imports every provider backend that ships with toppcloud, so
// that their init functions register them. It is the one list of what
// ships; cmd/toppcloud imports it.
package all

import (
	_ "github.com/toppcloud/toppcloud/internal/provider/digitalocean"
	_ "github.com/toppcloud/toppcloud/internal/provider/ec2"
	_ "github.com/toppcloud/toppcloud/internal/provider/existing"
	_ "github.com/toppcloud/toppcloud/internal/provider/hetzner"
	_ "github.com/toppcloud/toppcloud/internal/provider/linode"
	_ "github.com/toppcloud/toppcloud/internal/provider/local"
	_ "github.com/toppcloud/toppcloud/internal/provider/openstack"
	_ "github.com/toppcloud/toppcloud/internal/provider/rackspace"
	_ "github.com/toppcloud/toppcloud/internal/provider/vultr"
)
