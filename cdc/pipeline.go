package cdc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/walcast/walcast/internal/logkey"
)

// Transformer turns a change into events. *Mapper implements it. Map appends
// to dst and returns it; events must not refer to c's buffers after Map returns.
type Transformer interface {
	Map(dst []Event, c *Change) ([]Event, error)
}

// Committer is an optional interface of a Transformer whose events may wait
// for the end of their transaction (rules that collect a transaction's rows
// into one event). The Pipeline calls MapCommit after the transaction's
// last Map, with its commit LSN and time and the number of changes it had;
// MapCommit appends the held events to dst and returns it. Events it
// appends should use indexes from changes*4 up, after every change's own.
type Committer interface {
	MapCommit(dst []Event, lsn LSN, at time.Time, changes uint32) []Event
}

// DefaultMaxBatch is the default PipelineConfig.MaxBatch.
const DefaultMaxBatch = 2048

// PipelineConfig configures a Pipeline.
type PipelineConfig struct {
	// Reader configures the replication reader.
	Reader ReaderConfig
	// Transformer maps changes to events (required).
	Transformer Transformer
	// Sink receives the events (required).
	Sink Sink
	// MaxBatch is the most events handed to one Sink.Publish call. Events are
	// published when this many are buffered (big transactions go out in
	// chunks as they arrive) and whenever the Reader has handled everything
	// received so far. Zero means DefaultMaxBatch; negative is invalid.
	MaxBatch int
}

// Pipeline runs Reader -> Transformer -> Sink and acknowledges a transaction
// to Postgres only after Publish accepted all of its events.
type Pipeline struct {
	r        *Reader
	t        Transformer
	sink     Sink
	maxBatch int
	log      *slog.Logger

	buf           []Event
	events        atomic.Uint64
	mapErrors     atomic.Uint64
	lastMapErrLog time.Time
}

// NewPipeline checks cfg and returns a Pipeline. It does no I/O.
func NewPipeline(cfg PipelineConfig) (*Pipeline, error) {
	var errs []error
	r, err := NewReader(cfg.Reader)
	if err != nil {
		errs = append(errs, err)
	}
	if cfg.Transformer == nil {
		errs = append(errs, errors.New("cdc: PipelineConfig.Transformer is required"))
	}
	if cfg.Sink == nil {
		errs = append(errs, errors.New("cdc: PipelineConfig.Sink is required"))
	}
	if cfg.MaxBatch < 0 {
		errs = append(errs, fmt.Errorf("cdc: PipelineConfig.MaxBatch %d is negative", cfg.MaxBatch))
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Pipeline{
		r: r, t: cfg.Transformer, sink: cfg.Sink, maxBatch: cfg.MaxBatch,
		log: r.cfg.Logger.With(logkey.Component, "cdc.pipeline"),
		buf: make([]Event, 0, cfg.MaxBatch),
	}, nil
}

// Reader returns the pipeline's Reader.
func (p *Pipeline) Reader() *Reader { return p.r }

// Run streams until ctx ends (see Reader.Run).
func (p *Pipeline) Run(ctx context.Context) error {
	return p.r.Run(ctx, (*pipelineHandler)(p))
}

// Stats returns the Reader's stats with the number of published events. Safe
// for concurrent use.
func (p *Pipeline) Stats() ReaderStats {
	s := p.r.Stats()
	s.Events = p.events.Load()
	return s
}

// MapErrors is the number of changes the Transformer rejected (logged and skipped).
func (p *Pipeline) MapErrors() uint64 { return p.mapErrors.Load() }

type pipelineHandler Pipeline

func (h *pipelineHandler) HandleChange(ctx context.Context, c *Change) error {
	p := (*Pipeline)(h)
	if c.Op == OpMessage && c.Prefix == MessagePrefixMark {
		// A state mark (see MessagePrefixMark), whatever the Transformer.
		if token, ok := ParseMark(c.Content); ok {
			p.buf = append(p.buf, Event{
				ID:         EventID{LSN: c.CommitLSN, Index: c.Index * eventsPerChange},
				Room:       MarkRoom,
				Name:       EventMark,
				Payload:    strconv.AppendQuote(nil, token),
				CommitTime: c.CommitTime,
			})
		}
		return nil
	}
	out, err := p.t.Map(p.buf, c)
	if err != nil {
		// A change the mapper cannot handle would fail the same way after a
		// reconnect and stop the stream for good: skip it, loudly.
		p.mapErrors.Add(1)
		if time.Since(p.lastMapErrLog) > 10*time.Second {
			p.lastMapErrLog = time.Now()
			p.log.Error("cannot map change; skipped", logkey.Err, err, logkey.LSN, c.CommitLSN.String(), "index", c.Index, "op", c.Op.String(), "errors", p.mapErrors.Load())
		}
		return nil
	}
	p.buf = out
	if len(p.buf) >= p.maxBatch {
		return p.publish(ctx)
	}
	return nil
}

func (h *pipelineHandler) HandleCommit(ctx context.Context, lsn LSN, at time.Time, changes uint32) error {
	p := (*Pipeline)(h)
	c, ok := p.t.(Committer)
	if !ok {
		return nil
	}
	p.buf = c.MapCommit(p.buf, lsn, at, changes)
	if len(p.buf) >= p.maxBatch {
		return p.publish(ctx)
	}
	return nil
}

func (h *pipelineHandler) Flush(ctx context.Context) error {
	return (*Pipeline)(h).publish(ctx)
}

func (h *pipelineHandler) Reset() {
	p := (*Pipeline)(h)
	clear(p.buf)
	p.buf = p.buf[:0]
}

func (p *Pipeline) publish(ctx context.Context) error {
	if len(p.buf) == 0 {
		return nil
	}
	for len(p.buf) > 0 {
		n := min(len(p.buf), p.maxBatch)
		if err := p.sink.Publish(ctx, p.buf[:n]); err != nil {
			return fmt.Errorf("publish %d events: %w", n, err)
		}
		p.events.Add(uint64(n))
		// Keep the remainder (a single change may map to many events).
		rest := copy(p.buf, p.buf[n:])
		clear(p.buf[rest:])
		p.buf = p.buf[:rest]
	}
	return nil
}
