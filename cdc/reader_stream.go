package cdc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/walcast/walcast/internal/logkey"
)

// stream is the state of one replication session. Only the Run goroutine
// touches it.
type stream struct {
	r    *Reader
	h    Handler
	conn *pgconn.PgConn
	br   *bufio.Reader

	types     *pgtype.Map
	rels      map[uint32]*Relation
	typeNames map[uint32]string // user-defined type OID -> "schema.name"

	msg    WireMessage
	change Change
	trunc  []*Relation

	// Transaction state.
	inTx     bool
	txXID    uint32
	txLSN    LSN
	txTime   time.Time
	txIndex  uint32
	received LSN

	// Ack state (see ack.go).
	acked         LSN // position to send as flushed: min(handled, AckLimit)
	handled       LSN // highest position safe to acknowledge
	lastCommitEnd LSN // end LSN of the last commit handed on
	idleSafe      LSN // a keepalive position seen with no transaction open
	dirty         bool
	sentAcked     LSN // position in the last status update

	lastRecv   time.Time
	nextStatus time.Time
	deadline   time.Time
}

func (s *stream) run(ctx context.Context) error {
	s.rels = make(map[uint32]*Relation)
	s.typeNames = make(map[uint32]string)
	cfg := &s.r.cfg
	now := time.Now()
	s.lastRecv = now
	s.nextStatus = now.Add(cfg.StatusInterval)

	// Cancelling ctx, and Reader.Rewind, must wake a blocked read: move the
	// read deadline to the past. run re-checks ctx and the rewind request
	// after every deadline change, so a later SetReadDeadline cannot undo
	// this unnoticed.
	netConn := s.conn.Conn()
	var wakeMu sync.Mutex
	closing := false
	wake := func() {
		wakeMu.Lock()
		defer wakeMu.Unlock()
		if !closing {
			netConn.SetReadDeadline(time.Unix(1, 0))
		}
	}
	stop := context.AfterFunc(ctx, wake)
	defer stop()
	s.r.rewindAsked.Store(false)
	s.r.wake.Store(&wake)
	defer s.r.wake.Store(nil)
	defer func() {
		if ctx.Err() == nil || s.conn.IsClosed() {
			return // an error path: the conn may be broken; periodic status updates suffice
		}
		// A graceful stop: send the final position and end the stream with
		// CopyDone, then wait for the server's answer, which proves the
		// position was processed before the connection closes.
		wakeMu.Lock()
		closing = true
		wakeMu.Unlock()
		_ = netConn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if err := s.sendStatus(false); err != nil {
			s.r.log.Warn("final standby status not sent", logkey.Err, err)
			return
		}
		if _, err := pglogrepl.SendStandbyCopyDone(context.Background(), s.conn); err != nil {
			s.r.log.Warn("ending replication stream", logkey.Err, err, logkey.LSN, s.acked.String())
			return
		}
		s.r.log.Debug("replication stream ended cleanly", logkey.LSN, s.acked.String())
	}()

	for {
		if s.r.rewindAsked.CompareAndSwap(true, false) {
			return fmt.Errorf("asked by Reader.Rewind: %w", ErrRewind)
		}
		now = time.Now()
		if !now.Before(s.nextStatus) {
			if err := s.flush(ctx); err != nil {
				return err
			}
			s.advance(0) // the AckLimit may have risen
			idle := now.Sub(s.lastRecv) >= cfg.StatusInterval
			if idle && now.Sub(s.lastRecv) >= cfg.ReadTimeout {
				return fmt.Errorf("replication connection silent for %v (read timeout %v)", now.Sub(s.lastRecv).Round(time.Millisecond), cfg.ReadTimeout)
			}
			// When the stream is quiet ask the server to answer, so that a
			// dead connection shows as silence within ReadTimeout.
			if err := s.sendStatus(idle); err != nil {
				return err
			}
			s.nextStatus = now.Add(cfg.StatusInterval)
		}
		if s.dirty && !s.inTx && s.drained() {
			// The next read may block: publish what is buffered first.
			// Inside a transaction the server is sending the rest of it
			// (pgoutput sends only committed transactions, whole), so the
			// handler's batches fill up instead of going out in small pieces;
			// a stalled stream is still flushed at the next status update.
			if err := s.flush(ctx); err != nil {
				return err
			}
		}
		if dl := minTime(s.nextStatus, s.lastRecv.Add(cfg.ReadTimeout)); !dl.Equal(s.deadline) {
			s.deadline = dl
			if err := netConn.SetReadDeadline(dl); err != nil {
				return fmt.Errorf("set read deadline: %w", err)
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if s.r.rewindAsked.Load() {
			continue
		}
		msg, err := s.conn.ReceiveMessage(context.Background())
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if pgconn.Timeout(err) {
				s.deadline = time.Time{}
				if time.Since(s.lastRecv) >= cfg.ReadTimeout {
					return fmt.Errorf("replication connection silent for %v (read timeout %v)", time.Since(s.lastRecv).Round(time.Millisecond), cfg.ReadTimeout)
				}
				continue
			}
			return fmt.Errorf("receive replication message: %w", err)
		}
		s.lastRecv = time.Now()
		switch msg := msg.(type) {
		case *pgproto3.CopyData:
			if err := s.handleCopyData(ctx, msg.Data); err != nil {
				return err
			}
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("replication stream: %w", pgconn.ErrorResponseToPgError(msg))
		case *pgproto3.CopyDone:
			return errors.New("replication stream: server ended the stream (CopyDone)")
		default:
			// NoticeResponse, ParameterStatus and the like: nothing to do.
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// drained reports whether every byte received so far has been handled, so the
// next read may block.
func (s *stream) drained() bool {
	return s.conn.Frontend().ReadBufferLen() == 0 && (s.br == nil || s.br.Buffered() == 0)
}

func (s *stream) handleCopyData(ctx context.Context, data []byte) error {
	if len(data) == 0 {
		return errors.New("replication stream: empty CopyData")
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return fmt.Errorf("replication stream: keepalive: %w", err)
		}
		s.r.serverWALEnd.Store(uint64(ka.ServerWALEnd))
		s.keepalive(ka.ServerWALEnd)
		if ka.ReplyRequested {
			if err := s.flush(ctx); err != nil {
				return err
			}
			if err := s.sendStatus(false); err != nil {
				return err
			}
			s.nextStatus = time.Now().Add(s.r.cfg.StatusInterval)
		}
		return nil
	case pglogrepl.XLogDataByteID:
		xld, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return fmt.Errorf("replication stream: %w", err)
		}
		if xld.ServerWALEnd > 0 {
			s.r.serverWALEnd.Store(uint64(xld.ServerWALEnd))
		}
		if xld.WALStart > s.received {
			s.received = xld.WALStart
			s.r.received.Store(uint64(xld.WALStart))
		}
		return s.handleWAL(ctx, xld.WALData)
	default:
		return fmt.Errorf("replication stream: unknown CopyData type %q", data[0])
	}
}

// handleWAL decodes one pgoutput message and hands changes on.
func (s *stream) handleWAL(ctx context.Context, data []byte) error {
	m := &s.msg
	if err := Decode(m, data); err != nil {
		return err
	}
	switch m.Type {
	case msgBegin:
		s.inTx = true
		s.txXID, s.txLSN, s.txTime, s.txIndex = m.XID, m.LSN, m.Time, 0
		return nil
	case msgCommit:
		if !s.inTx {
			return fmt.Errorf("replication stream: commit %s without begin", m.EndLSN)
		}
		s.inTx = false
		if ch, ok := s.h.(CommitHandler); ok && s.txIndex > 0 {
			if err := ch.HandleCommit(ctx, s.txLSN, s.txTime, s.txIndex); err != nil {
				return fmt.Errorf("handle commit %s: %w", s.txLSN, err)
			}
		}
		s.commit(m.EndLSN)
		s.r.txs.Add(1)
		return nil
	case msgInsert, msgUpdate, msgDelete:
		return s.handleRow(ctx, m)
	case msgTruncate:
		return s.handleTruncate(ctx, m)
	case msgMessage:
		c := s.resetChange()
		c.Op = OpMessage
		c.Prefix = m.Prefix
		c.Content = m.Content
		if m.Transactional {
			if !s.inTx {
				return fmt.Errorf("replication stream: transactional message at %s outside a transaction", m.LSN)
			}
			s.fillTx(c)
		} else {
			// A non-transactional message stands alone: its own LSN is its
			// position, and it is not sent again once that is acknowledged.
			c.CommitLSN = m.LSN
			c.CommitTime = time.Now()
		}
		return s.hand(ctx, c)
	}
	switch o := m.Other.(type) {
	case *pglogrepl.RelationMessageV2:
		rel := &Relation{
			ID:              o.RelationID,
			Namespace:       o.Namespace,
			Name:            o.RelationName,
			ReplicaIdentity: o.ReplicaIdentity,
			Columns:         make([]Column, len(o.Columns)),
		}
		for i, col := range o.Columns {
			rel.Columns[i] = Column{Name: col.Name, TypeOID: col.DataType, TypeMod: col.TypeModifier, Key: col.Flags&1 == 1, TypeName: s.typeNames[col.DataType]}
		}
		s.rels[rel.ID] = rel
	case *pglogrepl.TypeMessageV2:
		// User-defined types (enums, domains) are decoded as text by Value;
		// their names are kept for Column.TypeName. A Type message always
		// precedes the Relation message that uses the type.
		if len(s.typeNames) < 100_000 {
			ns := o.Namespace
			if ns == "" {
				ns = "pg_catalog" // pgoutput leaves pg_catalog out
			}
			s.typeNames[o.DataType] = ns + "." + o.Name
		}
	default:
		// Origin and (unrequested) stream messages carry nothing we use.
	}
	return nil
}

func (s *stream) handleTruncate(ctx context.Context, m *WireMessage) error {
	if !s.inTx {
		return errors.New("replication stream: truncate outside a transaction")
	}
	s.trunc = s.trunc[:0]
	for _, id := range m.RelationIDs {
		rel, ok := s.rels[id]
		if !ok {
			return fmt.Errorf("replication stream: truncate of relation %d that was never described", id)
		}
		s.trunc = append(s.trunc, rel)
	}
	if len(s.trunc) == 0 {
		return nil
	}
	c := s.resetChange()
	c.Op = OpTruncate
	c.Relation = s.trunc[0]
	c.Truncated = s.trunc
	s.fillTx(c)
	return s.hand(ctx, c)
}

func (s *stream) handleRow(ctx context.Context, m *WireMessage) error {
	if !s.inTx {
		return fmt.Errorf("replication stream: row change %q outside a transaction", m.Type)
	}
	rel, ok := s.rels[m.RelationID]
	if !ok {
		return fmt.Errorf("replication stream: change for relation %d that was never described", m.RelationID)
	}
	n := len(rel.Columns)
	if m.Type != msgDelete && len(m.New) != n {
		return fmt.Errorf("replication stream: %s.%s: new tuple has %d columns, relation has %d", rel.Namespace, rel.Name, len(m.New), n)
	}
	if m.OldKind != 0 && len(m.Old) != n {
		return fmt.Errorf("replication stream: %s.%s: old tuple has %d columns, relation has %d", rel.Namespace, rel.Name, len(m.Old), n)
	}
	c := s.resetChange()
	c.Relation = rel
	switch m.Type {
	case msgInsert:
		c.Op = OpInsert
	case msgUpdate:
		c.Op = OpUpdate
	case msgDelete:
		c.Op = OpDelete
	}
	if m.Type != msgDelete {
		c.New = m.New
	}
	switch m.OldKind {
	case 'K':
		// A key-only image: non-key columns arrive as 'n' but are not NULLs.
		for i := range m.Old {
			if !rel.Columns[i].Key {
				m.Old[i] = Value{Kind: ValueAbsent}
			}
		}
		c.Old = m.Old
	case 'O':
		c.Old = m.Old
		if c.New != nil {
			// Unchanged TOASTed values are not sent; under REPLICA IDENTITY
			// FULL the old image holds them.
			for i := range c.New {
				if c.New[i].Kind == ValueUnchanged && c.Old[i].Kind != ValueUnchanged {
					c.New[i] = c.Old[i]
				}
			}
		}
	}
	s.fillTx(c)
	return s.hand(ctx, c)
}

func (s *stream) resetChange() *Change {
	s.change = Change{types: s.types}
	return &s.change
}

func (s *stream) fillTx(c *Change) {
	c.XID = s.txXID
	c.CommitLSN = s.txLSN
	c.CommitTime = s.txTime
	c.Index = s.txIndex
	s.txIndex++
}

func (s *stream) hand(ctx context.Context, c *Change) error {
	s.dirty = true
	s.r.changes.Add(1)
	if err := s.h.HandleChange(ctx, c); err != nil {
		return fmt.Errorf("handle change %s/%d: %w", c.CommitLSN, c.Index, err)
	}
	return nil
}

// sendStatus sends a standby status update: flushed (and applied) is the
// acknowledged position, which the slot keeps; written is the position
// handled, which differs only under AckLimit and shows in
// pg_stat_replication.write_lsn how far the reader really is.
func (s *stream) sendStatus(replyRequested bool) error {
	netConn := s.conn.Conn()
	// A half-open connection must not block the write forever either.
	_ = netConn.SetWriteDeadline(time.Now().Add(s.r.cfg.StatusInterval))
	err := pglogrepl.SendStandbyStatusUpdate(context.Background(), s.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: max(s.acked, s.handled),
		WALFlushPosition: s.acked,
		WALApplyPosition: s.acked,
		ReplyRequested:   replyRequested,
	})
	if err != nil {
		return fmt.Errorf("send standby status at %s: %w", s.acked, err)
	}
	s.sentAcked = s.acked
	return nil
}
