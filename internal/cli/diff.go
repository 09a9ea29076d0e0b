package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/appdiff"
	"github.com/toppcloud/toppcloud/internal/deploy"
	"github.com/toppcloud/toppcloud/internal/location"
)

// errDiffer is diff's "the two differ": exit 1 with nothing more said,
// as diff(1) does.
var errDiffer = &silentError{code: ExitFailed}

// silentError sets the exit status without a message (the command has
// said all there is to say).
type silentError struct{ code int }

func (e *silentError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func (a *App) diffCmd() *cobra.Command {
	var node, instance string
	cmd := &cobra.Command{
		Use:   "diff APP_DIR [LOCATION] [--node N] [--instance I]",
		Short: "Show how an application directory differs from what is deployed",
		Long: `Compare APP_DIR with the instance live at LOCATION (default: app.ini's
default_location), or with --instance NAME, and print the differences as a
unified diff, the instance as the old side. Only the manifest is sent and
only the files that differ come back; ignored files are left out as update
leaves them out. Exits 0 when they are the same, 1 when they differ, as
diff(1) does, 2 on bad input. Changes nothing on the node.`,
		GroupID: "devel",
		Args:    rangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			cfg, err := appconfig.Load(args[0])
			if err != nil {
				return asUsage(err)
			}
			locArg := cfg.DefaultLocation
			if len(args) > 1 {
				locArg = args[1]
			}
			var loc location.Location
			name := node
			switch {
			case locArg != "":
				if loc, name, err = a.locationNode(locArg, node); err != nil {
					return err
				}
			case instance == "":
				return usagef("diff: give LOCATION (app.ini has no default_location) or --instance")
			case node == "":
				return usagef("diff --instance %s: give --node NODE", instance)
			default:
				if name, err = deploy.ResolveNode(location.Location{}, node, a.nodes()); err != nil {
					return inputErr(err)
				}
			}
			cache, err := a.nodes().ManifestCache()
			if err != nil {
				return err
			}
			o := appdiff.Options{Dir: args[0], Instance: instance, CacheDir: cache}
			if instance == "" {
				o.Location = loc.String()
			}
			n, _, closeConn, err := a.connectDeploy(ctx, name)
			if err != nil {
				return err
			}
			defer closeConn()
			res, err := appdiff.Run(ctx, n.Call, o, a.out.Stdout)
			if err != nil {
				return withTail(fmt.Errorf("diff %s: %w", args[0], err))
			}
			if res.Differ == 0 {
				a.out.Printf("%s is the same as %s (%d paths)", args[0], res.Instance, res.Same)
				return nil
			}
			a.out.Printf("%s differs from %s in %d of %d paths", args[0], res.Instance, res.Differ, res.Differ+res.Same)
			return errDiffer
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "the `NODE` (default: the location's host)")
	cmd.Flags().StringVar(&instance, "instance", "", "compare with instance `NAME` (query lists them) instead of the live one")
	return cmd
}
