package bus

// Refilling the recovery streams after Redis lost them.
//
// With RedisStoreConfig.Refill, one key, <Prefix>:recovery:fill, says what
// the streams hold: "filled" once the publishing node (walcast's leader) has
// put every broadcast of the recovery window in them, or
// "filling <uid> <n>" while it is re-reading the window from its durable
// source (the replication slot, held back by the window). A Redis that
// restarted without its data has no such key; a leader that died while
// filling left its own value. Either way the leader's next publish sees a
// value it did not expect, in the same pipeline as the publish: it deletes
// the streams, writes its own "filling" value and returns a *StreamsLost, so
// that its caller re-reads the window and publishes it again. Broadcasts
// this node delivered already are only stored (see Redis.Publish), so
// clients get nothing twice. When the caller has published everything up
// to the position it had when the loss was found, it calls MarkFilled.
//
// Since, on any node, answers only while the key is "filled": a recovering
// client waits (up to FillWait) while the streams are refilled, instead of
// being told that its offset is gone.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/walcast/walcast/hub"
)

// DefaultFillWait is how long Since waits for the streams to be refilled.
const DefaultFillWait = 10 * time.Second

const filledValue = "filled"

// ErrStreamsLost is what a *StreamsLost matches with errors.Is.
var ErrStreamsLost = errors.New("bus: the recovery streams were lost (Redis restarted without its data)")

// StreamsLost is returned by Publish when the recovery streams no longer
// hold what this node stored (see the fill key above). The streams were
// deleted; publish the recovery window again (every broadcast from its
// oldest one on, in order), then call MarkFilled(ctx, Gen).
type StreamsLost struct {
	Gen   uint64 // this refill's number; MarkFilled ends it
	Found string // the fill key's value that was found ("" = none)

	published bool // the batch was published in the same pipeline (one Redis)
}

func (e *StreamsLost) Error() string {
	found := e.Found
	if found == "" {
		found = "no fill mark"
	}
	return fmt.Sprintf("%s (found %s); refill %d", ErrStreamsLost.Error(), strconv.Quote(found), e.Gen)
}

// Is makes errors.Is(err, ErrStreamsLost) hold.
func (e *StreamsLost) Is(target error) bool { return target == ErrStreamsLost }

func (s *RedisStore) fillKey() string { return s.cfg.Prefix + ":recovery:fill" }

// fillingValue is the fill key's value while node uid runs refill gen.
func fillingValue(uid string, gen uint64) string {
	return "filling " + uid + " " + strconv.FormatUint(gen, 10)
}

// expectedFill is the fill key's value this bus expects; the caller holds pubMu.
func (r *Redis) expectedFill() string {
	if r.fillGen == 0 {
		return filledValue
	}
	return fillingValue(r.cfg.UID, r.fillGen)
}

// refillsStreams reports whether bs stores anything in a recovery stream
// that this bus must keep complete.
func (r *Redis) refillsStreams(bs []*hub.Broadcast) bool {
	if r.cfg.Store == nil || !r.cfg.Store.cfg.Refill {
		return false
	}
	for _, b := range bs {
		if b.Offset != "" {
			if _, ok := parseStreamID(b.Offset); ok {
				return true
			}
		}
	}
	return false
}

// checkFill compares the fill key's value, read in the publish pipeline, with
// the expected one. On a mismatch it deletes the streams, starts a refill
// and returns its *StreamsLost. The caller holds pubMu.
func (r *Redis) checkFill(ctx context.Context, got *redis.StringCmd) error {
	val, err := got.Result()
	if errors.Is(err, redis.Nil) {
		val, err = "", nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", r.cfg.Store.fillKey(), err)
	}
	if val == r.expectedFill() {
		return nil
	}
	gen := r.fillGen + 1
	keys := []string{}
	for nsp := range r.nsps {
		keys = append(keys, r.cfg.Store.streamKeys(nsp)...)
	}
	// One DEL per key: on a Redis Cluster the streams live in different
	// slots. The fill key is written only once they are all gone.
	p := r.cfg.Client.Pipeline()
	for _, k := range keys {
		p.Del(ctx, k)
	}
	if _, err := p.Exec(ctx); err != nil {
		return fmt.Errorf("start refilling the recovery streams: delete them: %w", err)
	}
	if err := r.cfg.Client.Set(ctx, r.cfg.Store.fillKey(), fillingValue(r.cfg.UID, gen), 0).Err(); err != nil {
		return fmt.Errorf("start refilling the recovery streams: %w", err)
	}
	r.fillGen = gen
	r.m.refill()
	r.log.Warn("redis lost the recovery streams (restarted without its data, or a leader died while refilling them); refilling them from the replication slot",
		"found", val, "refill", gen)
	return &StreamsLost{Gen: gen, Found: val}
}

// CheckStreams reads the fill key now, as every publish that stores an
// offset does, and starts a refill when the streams were lost, returning its
// *StreamsLost. The publishing node calls it while it has nothing to
// publish, so that a Redis that came back empty is refilled before a client
// needs it. nil without Refill.
func (r *Redis) CheckStreams(ctx context.Context) error {
	if r.cfg.Store == nil || !r.cfg.Store.cfg.Refill {
		return nil
	}
	r.pubMu.Lock()
	defer r.pubMu.Unlock()
	// The de-duplication marks come from the streams: read them before a
	// refill deletes the streams.
	if !r.primed {
		if err := r.prime(ctx); err != nil {
			return fmt.Errorf("bus: %w", err)
		}
	}
	cmd := r.cfg.Client.Get(ctx, r.cfg.Store.fillKey())
	if err := r.checkFill(ctx, cmd); err != nil {
		var lost *StreamsLost
		if errors.As(err, &lost) {
			return err
		}
		return fmt.Errorf("bus: %w", err)
	}
	return nil
}

// MarkFilled ends refill gen: the streams hold the whole window again, and
// Since answers on every node. It reports false, and does nothing, when gen
// is not the current refill or the fill key no longer names it (the streams
// were lost again meanwhile, or another node's refill took over): the
// refill that follows marks them.
func (r *Redis) MarkFilled(ctx context.Context, gen uint64) (bool, error) {
	r.pubMu.Lock()
	defer r.pubMu.Unlock()
	if gen == 0 || gen != r.fillGen {
		return false, nil
	}
	key := r.cfg.Store.fillKey()
	cur, err := r.cfg.Client.Get(ctx, key).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, fmt.Errorf("bus: read %s: %w", key, err)
	}
	if cur != fillingValue(r.cfg.UID, gen) {
		return false, nil
	}
	if err := r.cfg.Client.Set(ctx, key, filledValue, 0).Err(); err != nil {
		return false, fmt.Errorf("bus: mark the recovery streams filled: %w", err)
	}
	r.fillGen = 0
	r.log.Info("recovery streams refilled from the replication slot", "refill", gen)
	return true, nil
}

// waitFilled waits until the streams are filled, or FillWait passed; false
// means they are not (the caller refuses the recovery).
func (s *RedisStore) waitFilled(ctx context.Context) (bool, error) {
	deadline := time.Now().Add(s.cfg.FillWait)
	for {
		val, err := s.cfg.Client.Get(ctx, s.fillKey()).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return false, fmt.Errorf("bus: read %s: %w", s.fillKey(), err)
		}
		if val == filledValue {
			return true, nil
		}
		if time.Now().After(deadline) {
			s.log.Warn("recovery refused: the recovery streams are still being refilled", "fill", val, "waited", s.cfg.FillWait)
			return false, nil
		}
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return false, fmt.Errorf("bus: waiting for the recovery streams to be refilled: %w", ctx.Err())
		case <-t.C:
		}
	}
}
