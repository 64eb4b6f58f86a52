package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"encoding/base64"
	"strings"
	"testing"
)

func TestPinnedClientMatchesLockFile(t *testing.T) {
	pin, err := readLockPin("../../testdata/package-lock.json")
	if err != nil {
		t.Fatalf("readLockPin: %v", err)
	}
	if pin.Version != pinnedClientVersion || pin.Integrity != pinnedClientIntegrity {
		t.Errorf("lock file has socket.io-client %s %s, the binary pins %s %s: update demo_clientjs.go",
			pin.Version, pin.Integrity, pinnedClientVersion, pinnedClientIntegrity)
	}
}

func makeTarball(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

func integrity(b []byte) string {
	sum := sha512.Sum512(b)
	return "sha512-" + base64.StdEncoding.EncodeToString(sum[:])
}

func TestBundleFromTarball(t *testing.T) {
	tgz := makeTarball(t, map[string]string{"package/package.json": "{}", clientBundlePath: "/* io */"})
	t.Run("Verified", func(t *testing.T) {
		js, err := bundleFromTarball(tgz, clientPin{"1.0.0", integrity(tgz)})
		if err != nil || string(js) != "/* io */" {
			t.Errorf("bundleFromTarball = %q, %v; want the bundle", js, err)
		}
	})
	t.Run("IntegrityMismatch", func(t *testing.T) {
		bad := append([]byte(nil), tgz...)
		bad[len(bad)-1] ^= 1
		_, err := bundleFromTarball(bad, clientPin{"1.0.0", integrity(tgz)})
		if err == nil || !strings.Contains(err.Error(), "does not match") {
			t.Errorf("bundleFromTarball(tampered) = %v, want an integrity error", err)
		}
	})
	t.Run("NoBundle", func(t *testing.T) {
		other := makeTarball(t, map[string]string{"package/x.js": "x"})
		_, err := bundleFromTarball(other, clientPin{"1.0.0", integrity(other)})
		if err == nil || !strings.Contains(err.Error(), "has no") {
			t.Errorf("bundleFromTarball(no bundle) = %v, want a missing-file error", err)
		}
	})
}

// FuzzExtractBundle: downloaded tarball bytes give the bundle or an error,
// never a panic.
func FuzzExtractBundle(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x1f, 0x8b, 0x08})
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: clientBundlePath, Mode: 0o644, Size: 3})
	tw.Write([]byte("io;"))
	tw.Close()
	zw.Close()
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		js, err := extractBundle(b)
		if err == nil && js == nil {
			t.Errorf("extractBundle = nil, nil")
		}
	})
}
