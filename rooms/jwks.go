package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/walcast/walcast/internal/logkey"
	"github.com/walcast/walcast/internal/redact"
	"golang.org/x/sync/singleflight"
)

// maxJWKSBytes bounds a JWKS response body (Supabase's is well under 4 KiB).
const maxJWKSBytes = 1 << 20

// jwksStore is the jwkset.Storage behind keyfunc: an in-memory key set that
// refetches the JWKS when a kid is unknown, at most once per minRefresh and one
// fetch at a time. A handshake waits for that fetch only until its context
// (KeyLookupTimeout) ends; the fetch itself goes on, bounded by fetchTimeout,
// so the next handshake finds the new key.
type jwksStore struct {
	jwkset.Storage // the in-memory set keyfunc reads

	url          string
	client       *http.Client
	fetchTimeout time.Duration
	minRefresh   time.Duration
	refreshEvery time.Duration
	log          *slog.Logger
	now          func() time.Time
	kf           keyfunc.Keyfunc

	sf        singleflight.Group
	mu        sync.Mutex
	lastFetch time.Time // start of the last fetch attempt
	inflight  bool
	fetched   atomic.Bool
	lifetime  atomic.Pointer[context.Context] // Run's context, parent of fetches
}

func newJWKSStore(cfg Config) *jwksStore {
	s := &jwksStore{
		Storage:      jwkset.NewMemoryStorage(),
		url:          cfg.JWKSURL,
		client:       cfg.HTTPClient,
		fetchTimeout: cfg.JWKSFetchTimeout,
		minRefresh:   cfg.JWKSMinRefreshInterval,
		refreshEvery: cfg.JWKSRefreshInterval,
		log:          cfg.Logger.With(slog.String(logkey.Component, "rooms.jwks")),
		now:          cfg.now,
	}
	kf, err := keyfunc.New(keyfunc.Options{Storage: s})
	if err != nil {
		// keyfunc.New fails only for a nil storage.
		panic(fmt.Sprintf("rooms: keyfunc.New: %v", err))
	}
	s.kf = kf
	return s
}

func (s *jwksStore) keyfunc(ctx context.Context) jwt.Keyfunc { return s.kf.KeyfuncCtx(ctx) }

// KeyRead returns the key kid, refetching the set once if it is unknown.
func (s *jwksStore) KeyRead(ctx context.Context, kid string) (jwkset.JWK, error) {
	if s.fetched.Load() {
		k, err := s.Storage.KeyRead(ctx, kid)
		if !errors.Is(err, jwkset.ErrKeyNotFound) {
			return k, err
		}
	}
	if err := s.refresh(ctx, false); err != nil {
		return jwkset.JWK{}, err
	}
	return s.Storage.KeyRead(ctx, kid)
}

// KeyReadAll returns every key (tokens without a kid), fetching the set first
// if it never was.
func (s *jwksStore) KeyReadAll(ctx context.Context) ([]jwkset.JWK, error) {
	if !s.fetched.Load() {
		if err := s.refresh(ctx, false); err != nil {
			return nil, err
		}
	}
	return s.Storage.KeyReadAll(ctx)
}

// refresh fetches the set unless a fetch started less than minRefresh ago
// (force skips that check: the periodic refresh), waiting at most until ctx
// ends.
func (s *jwksStore) refresh(ctx context.Context, force bool) error {
	s.mu.Lock()
	join := s.inflight
	recent := !s.lastFetch.IsZero() && s.now().Sub(s.lastFetch) < s.minRefresh
	if !join && recent && !force {
		s.mu.Unlock()
		if !s.fetched.Load() {
			return fmt.Errorf("%w: the last fetch failed less than %v ago", errKeysUnavailable, s.minRefresh)
		}
		return nil // too soon to refetch: the kid is simply unknown
	}
	if !join {
		s.inflight = true
		s.lastFetch = s.now()
	}
	s.mu.Unlock()
	ch := s.sf.DoChan("jwks", func() (any, error) {
		defer func() {
			s.mu.Lock()
			s.inflight = false
			s.mu.Unlock()
		}()
		parent := context.Background()
		if p := s.lifetime.Load(); p != nil {
			parent = *p
		}
		fctx, cancel := context.WithTimeout(parent, s.fetchTimeout)
		defer cancel()
		err := s.fetch(fctx)
		if err != nil {
			s.log.Warn("jwks fetch failed", slog.String("url", redact.URL(s.url)), slog.Any(logkey.Err, err))
		}
		return nil, err
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			if s.fetched.Load() {
				return nil // keep the old keys; the kid is unknown
			}
			return fmt.Errorf("%w: %v", errKeysUnavailable, r.Err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w after waiting for the JWKS: %v", errKeyLookupTimeout, ctx.Err())
	}
}

// fetch downloads the JWKS and replaces the stored keys. Keys of unsupported
// types are skipped; only public key material is kept.
func (s *jwksStore) fetch(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return fmt.Errorf("build JWKS request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("get JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get JWKS: HTTP status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return fmt.Errorf("read JWKS: %w", err)
	}
	if len(body) > maxJWKSBytes {
		return fmt.Errorf("read JWKS: larger than %d bytes", maxJWKSBytes)
	}
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(body, &set); err != nil {
		return fmt.Errorf("decode JWKS: %w", err)
	}
	keys := make([]jwkset.JWK, 0, len(set.Keys))
	var skipped int
	for _, m := range set.Keys {
		k, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if err != nil {
			skipped++
			continue
		}
		if _, sym := k.Key().([]byte); sym {
			// A symmetric key in a public key set is never used: HS* tokens
			// are checked with the configured secret only.
			skipped++
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 && len(set.Keys) > 0 {
		return fmt.Errorf("decode JWKS: none of its %d keys is usable", len(set.Keys))
	}
	if err := s.Storage.KeyReplaceAll(ctx, keys); err != nil {
		return fmt.Errorf("store JWKS: %w", err)
	}
	s.fetched.Store(true)
	s.log.Debug("jwks fetched", slog.Int("keys", len(keys)), slog.Int("skipped", skipped))
	return nil
}

// run fetches the set at once and then every refreshEvery until ctx ends.
func (s *jwksStore) run(ctx context.Context) error {
	s.lifetime.Store(&ctx)
	_ = s.refresh(ctx, true)
	if s.refreshEvery <= 0 {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(s.refreshEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			_ = s.refresh(ctx, true)
		}
	}
}
