package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/walcast/walcast/rules"
)

// runRules prints the effective rules (the file WALCAST_RULES or -rules
// names, else the built-in file) as JSON to stdout, after parsing and
// compiling them; a bad file prints one line per problem and fails.
func runRules(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rules", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("rules", getenv("WALCAST_RULES"), "rules file (default: WALCAST_RULES, else the built-in rules)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	r, err := rules.Load(*path)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(r.File, "", "  ")
	if err != nil {
		return fmt.Errorf("rules: %w", err)
	}
	_, err = fmt.Fprintf(stdout, "%s\n", b)
	return err
}
