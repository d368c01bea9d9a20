// compose-check loads a Compose file the way `docker compose config` does (the same
// compose-go library: schema validation, interpolation, merge keys, consistency of
// services, volumes and networks) and prints the normalized project as JSON, for
// deploy/validate/check.py. No Docker engine needed, and nothing from the caller's
// environment is read: the file's own ${VAR:-default}s decide, and the variables
// the file requires (${VAR:?...}: secrets with no default) get a placeholder.
//
//	compose-check docker-compose.yml > project.json
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: compose-check FILE...")
		os.Exit(2)
	}
	options, err := cli.NewProjectOptions(os.Args[1:],
		cli.WithEnv([]string{"GAVEL_JWT_SECRET=compose-check-placeholder-not-a-key"}),
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
		cli.WithProfiles([]string{"*"}), // every service, tool profiles included
	)
	if err == nil {
		err = run(options)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "compose:", err)
		os.Exit(1)
	}
}

func run(options *cli.ProjectOptions) error {
	project, err := options.LoadProject(context.Background())
	if err != nil {
		return err
	}
	out, err := project.MarshalJSON()
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(out)
	return err
}
