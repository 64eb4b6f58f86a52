package main

import (
	"context"
	"errors"
	"io"
)

func runServe(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	_, err := parseConfig(fs, optServe|optLog, args, getenv)
	if err != nil {
		return err
	}
	return errors.New("serve: not wired yet")
}
