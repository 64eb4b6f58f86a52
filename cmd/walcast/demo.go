package main

import (
	"context"
	"errors"
	"io"
)

func runDemo(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	return errors.New("demo: not wired yet")
}
