// Command toppcloud creates servers, sets them up and deploys web
// applications to them. The same binary runs on every node as the agent
// (`toppcloud node ...`).
package main

import (
	"os"

	"github.com/toppcloud/toppcloud/internal/cli"
	_ "github.com/toppcloud/toppcloud/internal/provider/all"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
