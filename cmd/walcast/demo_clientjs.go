package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The socket.io-client version the demo page uses when testdata/package-lock.json
// cannot be found (the binary runs outside the repository). A test keeps these
// equal to the lock file.
const (
	pinnedClientVersion   = "4.8.4"
	pinnedClientIntegrity = "sha512-7wjKAvVXYOJsbmUgkWbnhPD4bFpkqrUR0++XOjpGFmqDqsqV1CI93VTraeExLxpjxEqrWgFoSRZu1ihjLWfkAA=="
	clientBundlePath      = "package/dist/socket.io.min.js"
	maxTarballBytes       = 16 << 20
)

// clientPin is the socket.io-client version and the integrity of its npm tarball.
type clientPin struct {
	Version, Integrity string
}

// findUp returns the first existing path rel found in dir or one of its parents.
func findUp(dir, rel string) (string, bool) {
	for {
		p := filepath.Join(dir, rel)
		if _, err := os.Stat(p); err == nil {
			return p, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

// readLockPin reads socket.io-client's version and integrity from an npm
// package-lock.json (lockfileVersion 2 or 3).
func readLockPin(path string) (clientPin, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return clientPin{}, fmt.Errorf("read %s: %w", path, err)
	}
	var lock struct {
		Packages map[string]struct {
			Version   string `json:"version"`
			Integrity string `json:"integrity"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(b, &lock); err != nil {
		return clientPin{}, fmt.Errorf("parse %s: %w", path, err)
	}
	p, ok := lock.Packages["node_modules/socket.io-client"]
	if !ok || p.Version == "" || !strings.HasPrefix(p.Integrity, "sha512-") {
		return clientPin{}, fmt.Errorf("%s has no socket.io-client entry with a sha512 integrity", path)
	}
	return clientPin{Version: p.Version, Integrity: p.Integrity}, nil
}

// loadClientJS returns the socket.io-client browser bundle and where it came
// from: testdata/node_modules when present (found from the working directory
// upward), else the pinned npm tarball, downloaded once into the user cache
// directory and verified against the lock file's sha512 integrity.
func loadClientJS(ctx context.Context, client *http.Client) ([]byte, string, error) {
	wd, _ := os.Getwd()
	if p, ok := findUp(wd, filepath.Join("testdata", "node_modules", "socket.io-client", "dist", "socket.io.min.js")); ok {
		b, err := os.ReadFile(p)
		if err == nil {
			return b, p, nil
		}
	}
	pin := clientPin{pinnedClientVersion, pinnedClientIntegrity}
	if p, ok := findUp(wd, filepath.Join("testdata", "package-lock.json")); ok {
		if lp, err := readLockPin(p); err == nil {
			pin = lp
		}
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "walcast")
	tgz := filepath.Join(dir, "socket.io-client-"+pin.Version+".tgz")
	if b, err := os.ReadFile(tgz); err == nil {
		if js, err := bundleFromTarball(b, pin); err == nil {
			return js, tgz, nil
		}
		os.Remove(tgz) // corrupt or tampered: fetch again
	}
	url := "https://registry.npmjs.org/socket.io-client/-/socket.io-client-" + pin.Version + ".tgz"
	b, err := download(ctx, client, url)
	if err != nil {
		return nil, "", err
	}
	js, err := bundleFromTarball(b, pin)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", url, err)
	}
	if err := os.MkdirAll(dir, 0o755); err == nil {
		tmp := tgz + ".tmp"
		if os.WriteFile(tmp, b, 0o644) == nil {
			os.Rename(tmp, tgz)
		}
	}
	return js, url, nil
}

func download(ctx context.Context, client *http.Client, url string) ([]byte, error) {
	if client == nil {
		client = &http.Client{Timeout: 60 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("download %s: %s", url, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxTarballBytes+1))
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", url, err)
	}
	if len(b) > maxTarballBytes {
		return nil, fmt.Errorf("download %s: larger than %d bytes", url, maxTarballBytes)
	}
	return b, nil
}

// bundleFromTarball verifies the tarball against pin's sha512 integrity and
// extracts dist/socket.io.min.js from it.
func bundleFromTarball(tgz []byte, pin clientPin) ([]byte, error) {
	sum := sha512.Sum512(tgz)
	if got := "sha512-" + base64.StdEncoding.EncodeToString(sum[:]); got != pin.Integrity {
		return nil, fmt.Errorf("socket.io-client %s tarball integrity %s does not match the lock file's %s", pin.Version, got, pin.Integrity)
	}
	return extractBundle(tgz)
}

// extractBundle returns dist/socket.io.min.js from an npm package tarball.
func extractBundle(tgz []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		return nil, fmt.Errorf("socket.io-client tarball: %w", err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("socket.io-client tarball has no %s", clientBundlePath)
		}
		if err != nil {
			return nil, fmt.Errorf("socket.io-client tarball: %w", err)
		}
		if h.Name == clientBundlePath {
			return io.ReadAll(io.LimitReader(tr, maxTarballBytes))
		}
	}
}
