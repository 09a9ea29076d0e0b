package cli

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/toppcloud/toppcloud/internal/version"
)

func (a *App) versionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "version",
		Short:   "Print toppcloud's version",
		GroupID: "other",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			v := struct {
				Version  string `json:"version"`
				Protocol int    `json:"protocol"`
				Commit   string `json:"commit,omitempty"`
				Go       string `json:"go"`
				Platform string `json:"platform"`
			}{version.Version, version.Protocol, version.Commit(), runtime.Version(), runtime.GOOS + "/" + runtime.GOARCH}
			if asJSON {
				return a.out.JSON(v)
			}
			fmt.Fprintf(a.out.Stdout, "toppcloud %s (protocol %d, %s, %s)\n", v.Version, v.Protocol, v.Go, v.Platform)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}
