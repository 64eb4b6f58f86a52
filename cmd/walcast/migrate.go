package main

import (
	"context"
	"errors"
	"io"
)

func runMigrate(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := newFlagSet("migrate", stderr)
	_, err := parseConfig(fs, optDB|optLog, args, getenv)
	if err != nil {
		return err
	}
	return errors.New("migrate: not wired yet (waiting for the sql package)")
}
