package cdc_test

import (
	"fmt"
	"io"
	"log/slog"
)

func mapperDiscardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func mapperSscanf(s string, hi, lo *uint32) (int, error) { return fmt.Sscanf(s, "%X/%X", hi, lo) }
