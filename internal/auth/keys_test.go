package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadOrCreateKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "dir") // not there yet
	k, created, err := LoadOrCreateKeys(dir)
	if err != nil {
		t.Fatalf("first LoadOrCreateKeys: %v", err)
	}
	if !created {
		t.Errorf("first LoadOrCreateKeys: created = false")
	}
	for _, name := range []string{privateFile, publicFile} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("key file: %v", err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, perm)
		}
	}
	j, err := NewJWT(k.Options()...)
	if err != nil {
		t.Fatalf("NewJWT on the created keys: %v", err)
	}
	if !j.CanMint() {
		t.Errorf("created keys cannot mint")
	}
	// The files hold the PEM the keys encode.
	priv, _ := os.ReadFile(filepath.Join(dir, privateFile))
	if got := base64.StdEncoding.EncodeToString(priv); got != k.Private {
		t.Errorf("private file does not hold the returned private key")
	}

	k2, created, err := LoadOrCreateKeys(dir)
	if err != nil {
		t.Fatalf("second LoadOrCreateKeys: %v", err)
	}
	if created {
		t.Errorf("second LoadOrCreateKeys: created = true")
	}
	if k2 != k {
		t.Errorf("second LoadOrCreateKeys returned other keys")
	}
}

func TestLoadOrCreateKeysRefusesBadFiles(t *testing.T) {
	_, other := keyPairs(t)
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
	}{
		{"corrupt private key", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, privateFile), []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
		}},
		{"private key not PEM", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, privateFile), []byte("garbage"))
		}},
		{"empty private key", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, privateFile), nil)
		}},
		{"corrupt public key", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, publicFile), []byte("garbage"))
		}},
		{"public key missing", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, publicFile)); err != nil {
				t.Fatal(err)
			}
		}},
		{"private key of another pair", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, privateFile), other.priv)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, _, err := LoadOrCreateKeys(dir); err != nil {
				t.Fatalf("create: %v", err)
			}
			tc.setup(t, dir)
			k, created, err := LoadOrCreateKeys(dir)
			if err == nil {
				t.Fatalf("LoadOrCreateKeys accepted the files: %+v, created=%v", k, created)
			}
		})
	}
}

func TestLoadOrCreateKeysUnwritableDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	writeFile(t, file, []byte("x"))
	if _, _, err := LoadOrCreateKeys(file); err == nil {
		t.Fatalf("LoadOrCreateKeys under a regular file succeeded")
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func pemOf(typ string, der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

func TestParsePublicKey(t *testing.T) {
	pair, _ := keyPairs(t)
	key := pair.rsaKey(t)
	pkix, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := x509.MarshalPKCS1PublicKey(&key.PublicKey)
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"PKIX PEM", pemOf("PUBLIC KEY", pkix), true},
		{"base64 PKIX PEM", b64([]byte(pemOf("PUBLIC KEY", pkix))), true},
		{"PKCS#1 PEM", pemOf("RSA PUBLIC KEY", pkcs1), true},
		{"base64 PKCS#1 PEM", b64([]byte(pemOf("RSA PUBLIC KEY", pkcs1))), true},
		{"GenerateKeyPair's output", string(pair.pub), true},
		{"PKCS#1 bytes labelled PKIX", pemOf("PUBLIC KEY", pkcs1), false},
		{"PKIX bytes labelled PKCS#1", pemOf("RSA PUBLIC KEY", pkix), false},
		{"EC public key", pemOf("PUBLIC KEY", ecDER), false},
		{"private key", string(pair.priv), false},
		{"raw DER, not PEM", string(pkix), false},
		{"base64 of DER, not PEM", b64(pkix), false},
		{"empty", "", false},
		{"garbage", "not a key", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePublicKey(tc.in)
			if !tc.ok {
				if err == nil {
					t.Fatalf("ParsePublicKey accepted it")
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePublicKey: %v", err)
			}
			if !got.Equal(&key.PublicKey) {
				t.Errorf("ParsePublicKey returned another key")
			}
		})
	}
}

func TestParsePrivateKey(t *testing.T) {
	pair, _ := keyPairs(t)
	key := pair.rsaKey(t)
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	small8, err := x509.MarshalPKCS8PrivateKey(small)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ec8, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		in      string
		ok      bool
		errHint string
	}{
		{"PKCS#8 PEM", pemOf("PRIVATE KEY", pkcs8), true, ""},
		{"base64 PKCS#8 PEM", b64([]byte(pemOf("PRIVATE KEY", pkcs8))), true, ""},
		{"PKCS#1 PEM", pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key)), true, ""},
		{"base64 PKCS#1 PEM", b64([]byte(pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key)))), true, ""},
		{"1024-bit PKCS#1", pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(small)), false, "1024 bits"},
		{"1024-bit PKCS#8", pemOf("PRIVATE KEY", small8), false, "1024 bits"},
		{"base64 1024-bit PKCS#8", b64([]byte(pemOf("PRIVATE KEY", small8))), false, "1024 bits"},
		{"EC key", pemOf("PRIVATE KEY", ec8), false, "not RSA"},
		{"public key", string(pair.pub), false, ""},
		{"empty", "", false, ""},
		{"garbage", "bm90IGEga2V5", false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePrivateKey(tc.in)
			if !tc.ok {
				if err == nil {
					t.Fatalf("ParsePrivateKey accepted it")
				}
				if !strings.Contains(err.Error(), tc.errHint) {
					t.Errorf("error %q does not mention %q", err, tc.errHint)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePrivateKey: %v", err)
			}
			if !got.Equal(key) {
				t.Errorf("ParsePrivateKey returned another key")
			}
		})
	}
}

func TestGenerateKeyPairIsUsable(t *testing.T) {
	pair, other := keyPairs(t)
	for _, p := range []pemPair{pair, other} {
		priv, err := ParsePrivateKey(string(p.priv))
		if err != nil {
			t.Fatalf("ParsePrivateKey: %v", err)
		}
		if priv.N.BitLen() != keyBits {
			t.Errorf("key has %d bits, want %d", priv.N.BitLen(), keyBits)
		}
		pub, err := ParsePublicKey(string(p.pub))
		if err != nil {
			t.Fatalf("ParsePublicKey: %v", err)
		}
		if !priv.PublicKey.Equal(pub) {
			t.Errorf("the pair does not match")
		}
	}
	if pair.rsaKey(t).Equal(other.rsaKey(t)) {
		t.Errorf("two GenerateKeyPair calls gave the same key")
	}
}
