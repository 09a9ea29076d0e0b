package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/toppcloud/toppcloud/internal/agent/jobrun"
)

// nodeJobCmd is `toppcloud node-job ...`, what the units of an app's
// jobs run on a node (package jobrun). Hidden: systemd types it, people
// never do.
func (a *App) nodeJobCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "node-job COMMAND ARGS...",
		Short:              "Run a step of an app's cron entry or worker on this node (used by systemd)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch code := jobrun.Main(cmd.Context(), args, cmd.OutOrStdout(), cmd.ErrOrStderr()); code {
			case 0:
				return nil
			case ExitUsage:
				return usagef("node-job: bad arguments %q", strings.Join(args, " "))
			default:
				return fmt.Errorf("node-job %s failed", strings.Join(args, " "))
			}
		},
	}
}
