package setup

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/layout"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

// ReadSiteRole reads the node's part in a site, as setup-node last wrote
// it (layout.SiteRole). A node of its own has no such file: its role is
// the zero SiteRole.
func ReadSiteRole(h *host.Host, l layout.Layout) (protocol.SiteRole, error) {
	var r protocol.SiteRole
	data, err := h.ReadFile(l.SiteRole)
	if errors.Is(err, fs.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("read site role: %w", err)
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("read site role %s: %w", l.SiteRole, err)
	}
	return r, nil
}
