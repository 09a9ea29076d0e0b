package cli

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/configtmpl"
	"github.com/toppcloud/toppcloud/internal/skeleton"
)

func (a *App) initCmd() *cobra.Command {
	var main string
	var force bool
	cmd := &cobra.Command{
		Use:   "init DIR [--main python|php|static|command] [-f]",
		Short: "Make a new application directory that deploys as it is",
		Long: `Write a new application in DIR (created if needed): an app.ini with
app_name taken from the directory's name and every other key and service
shown in comments, static/, lib/python/, a minimal runner for --main
(python: main.py, a WSGI app; php: index.php; static: static/index.html;
command: server, listening on $PORT), and a .toppcloudignore.

Files that exist with other content are never overwritten without -f;
nothing is written then. Try it with: toppcloud serve DIR.`,
		GroupID: "devel",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, err := skeleton.ParseKind(main)
			if err != nil {
				return usagef("init: --main: %v", err)
			}
			res, err := skeleton.Write(skeleton.Options{Dir: args[0], Kind: kind, Force: force})
			var ee *skeleton.ExistsError
			if errors.As(err, &ee) {
				return asUsage(err)
			}
			if err != nil {
				return fmt.Errorf("init %s: %w", args[0], err)
			}
			for _, p := range res.Written {
				fmt.Fprintf(a.out.Stdout, "wrote %s\n", p)
			}
			for _, p := range res.Unchanged {
				a.out.Debugf("%s is already as init writes it", p)
			}
			a.out.Printf("%s: app %s (%s); run it with: toppcloud serve %s", args[0], res.App, kind, args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&main, "main", string(skeleton.Python), "the runner to write: python, php, static or command")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "overwrite files that exist with other content")
	return cmd
}

func (a *App) createConfigCmd() *cobra.Command {
	var info bool
	cmd := &cobra.Command{
		Use:   "create-config APP_DIR [OUTPUT] [VAR=VALUE...] [--info]",
		Short: "Make the app's configuration directory from its config.template",
		Long: `Render the directory app.ini's config.template names into OUTPUT (default:
config.default), as the original did. The template's template.ini lists its
variables in a [variables] section (name = description); give them as
VAR=VALUE, or answer the questions asked on a terminal for those missing.
--info lists them.

Files are copied, with +name+ in file and directory names replaced by the
variable's value; files ending in .tmpl are rendered and written without the
suffix. Templates are Go templates in which every variable is also a
function, so {{name}} (the original's Tempita form) works, as do {{.name}},
{{if name}}...{{end}} and pipelines; .html and .htm templates are escaped
for HTML. dot is ".". Dot files and template.ini are not copied. An existing
file with other content is kept as FILE.1 (FILE.2, ...) before it is
replaced. Use the result with update --config OUTPUT or serve --config OUTPUT.`,
		GroupID: "devel",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			appDir := args[0]
			rest := args[1:]
			output := ""
			if len(rest) > 0 && !strings.Contains(rest[0], "=") {
				output, rest = rest[0], rest[1:]
			}
			vars, err := configtmpl.ParseAssignments(rest)
			if err != nil {
				return usagef("create-config: %v", err)
			}
			cfg, err := appconfig.Load(appDir)
			if err != nil {
				return asUsage(err)
			}
			if cfg.ConfigTemplate == "" {
				return usagef("create-config: %s has no config.template (add config.template = DIR to [production])", cfg.File)
			}
			tp, err := configtmpl.Load(filepath.Join(appDir, filepath.FromSlash(cfg.ConfigTemplate)))
			if err != nil {
				return asUsage(err)
			}
			if info {
				if !tp.HasInfo {
					fmt.Fprintf(a.out.Stdout, "%s has no %s: it uses no variables\n", tp.Dir, configtmpl.InfoFile)
					return nil
				}
				for _, v := range tp.Variables {
					fmt.Fprintf(a.out.Stdout, "%s: %s\n", v.Name, v.Description)
				}
				return nil
			}
			if output == "" {
				if cfg.ConfigDefault == "" {
					return usagef("create-config: give OUTPUT (app.ini has no config.default to write to)")
				}
				output = filepath.Join(appDir, filepath.FromSlash(cfg.ConfigDefault))
			}
			if missing := tp.Missing(vars); len(missing) > 0 {
				if !a.interactive() {
					var names []string
					for _, v := range missing {
						names = append(names, v.Name+"=...")
					}
					return usagef("create-config: no value for %s (give them on the command line; --info describes them)", strings.Join(names, " "))
				}
				p := newTermPrompter(a)
				for _, v := range missing {
					q := v.Name
					if v.Description != "" {
						q += " (" + v.Description + ")"
					}
					ans, err := p.Ask(q, "")
					if err != nil {
						return err
					}
					vars[v.Name] = ans
				}
			}
			res, err := tp.Render(output, vars)
			if err != nil {
				return fmt.Errorf("create-config: %w", err)
			}
			for _, c := range res.Written {
				if c.Backup != "" {
					fmt.Fprintf(a.out.Stdout, "wrote %s (the previous one is kept as %s)\n", filepath.Join(output, c.Path), c.Backup)
				} else {
					fmt.Fprintf(a.out.Stdout, "wrote %s\n", filepath.Join(output, c.Path))
				}
			}
			a.out.Printf("%s: %d files written, %d unchanged", output, len(res.Written), len(res.Unchanged))
			return nil
		},
	}
	cmd.Flags().BoolVar(&info, "info", false, "list the template's variables and what they are for")
	return cmd
}
