package auth

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"go-micro.dev/v4/auth"

	"github.com/portal-go/portal/internal/datadir"
)

// Key files in the data dir.
const (
	privateFile = "auth_private.pem"
	publicFile  = "auth_public.pem"
	keyBits     = 2048
)

// Keys are a key pair as base64-encoded PEM, the form go-micro's auth options
// (and MICRO_AUTH_PUBLIC_KEY / MICRO_AUTH_PRIVATE_KEY) take.
type Keys struct {
	Public  string
	Private string
}

// LoadOrCreateKeys reads the key pair kept in dir, generating and saving one
// (mode 0600) on first start.
func LoadOrCreateKeys(dir string) (Keys, bool, error) {
	privPath, pubPath := filepath.Join(dir, privateFile), filepath.Join(dir, publicFile)
	priv, err := os.ReadFile(privPath)
	if err == nil {
		pub, err := os.ReadFile(pubPath)
		if err != nil {
			return Keys{}, false, fmt.Errorf("auth: %s exists but %w", privPath, err)
		}
		k := Keys{Private: base64.StdEncoding.EncodeToString(priv), Public: base64.StdEncoding.EncodeToString(pub)}
		j, err := NewJWT(k.Options()...)
		if err == nil && !j.CanMint() {
			// An empty private key reads as "none": a truncated file must
			// not start a process that cannot mint.
			err = fmt.Errorf("%s is empty", privPath)
		}
		if err != nil {
			return Keys{}, false, fmt.Errorf("auth: keys in %s: %w", dir, err)
		}
		return k, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return Keys{}, false, fmt.Errorf("auth: %w", err)
	}
	privPEM, pubPEM, err := GenerateKeyPair()
	if err != nil {
		return Keys{}, false, err
	}
	if err := SaveKeys(dir, privPEM, pubPEM); err != nil {
		return Keys{}, false, err
	}
	return Keys{Private: base64.StdEncoding.EncodeToString(privPEM), Public: base64.StdEncoding.EncodeToString(pubPEM)}, true, nil
}

// SaveKeys writes a key pair (PEM, as GenerateKeyPair makes) into dir, where
// LoadOrCreateKeys reads it; it fails if dir has keys already.
func SaveKeys(dir string, privPEM, pubPEM []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	// Public first: a crash in between leaves no private key without its pair.
	if err := writeNew(filepath.Join(dir, publicFile), pubPEM); err != nil {
		return err
	}
	return writeNew(filepath.Join(dir, privateFile), privPEM)
}

// ReadPublicKey returns the public key kept in dir by LoadOrCreateKeys, as
// base64 of PEM, for a process that only verifies tokens.
func ReadPublicKey(dir string) (string, error) {
	pub, err := os.ReadFile(filepath.Join(dir, publicFile))
	if err != nil {
		return "", fmt.Errorf("auth: %w", err)
	}
	k := base64.StdEncoding.EncodeToString(pub)
	if _, err := ParsePublicKey(k); err != nil {
		return "", err
	}
	return k, nil
}

// writeNew writes a key file atomically and durably: a crash never leaves it
// empty or half written.
func writeNew(path string, data []byte) error {
	if err := datadir.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("auth: write key: %w", err)
	}
	return nil
}

// Options turns the keys into go-micro auth options.
func (k Keys) Options() []auth.Option {
	return []auth.Option{auth.PublicKey(k.Public), auth.PrivateKey(k.Private)}
}

// GenerateKeyPair makes a fresh RSA key pair: a PKCS#8 private key and a PKIX
// public key, PEM encoded.
func GenerateKeyPair() (privPEM, pubPEM []byte, err error) {
	key, err := rsa.GenerateKey(rand.Reader, keyBits)
	if err != nil {
		return nil, nil, fmt.Errorf("auth: generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("auth: encode key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, nil, fmt.Errorf("auth: encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), nil
}

// decodePEM accepts base64 of a PEM file (go-micro's form) or the PEM itself.
func decodePEM(s string) (*pem.Block, error) {
	data := []byte(s)
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		data = b
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("auth: key is not PEM (or base64 of PEM)")
	}
	return block, nil
}

// ParsePublicKey reads an RSA public key: PKIX "PUBLIC KEY" or PKCS#1
// "RSA PUBLIC KEY".
func ParsePublicKey(s string) (*rsa.PublicKey, error) {
	block, err := decodePEM(s)
	if err != nil {
		return nil, err
	}
	var rk *rsa.PublicKey
	if block.Type == "RSA PUBLIC KEY" {
		if rk, err = x509.ParsePKCS1PublicKey(block.Bytes); err != nil {
			return nil, fmt.Errorf("auth: public key: %w", err)
		}
	} else {
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("auth: public key: %w", err)
		}
		var ok bool
		if rk, ok = k.(*rsa.PublicKey); !ok {
			return nil, errors.New("auth: public key is not RSA")
		}
	}
	if rk.N.BitLen() < keyBits {
		return nil, fmt.Errorf("auth: public key has %d bits, need at least %d", rk.N.BitLen(), keyBits)
	}
	return rk, nil
}

// ParsePrivateKey reads an RSA private key, PKCS#8 or PKCS#1.
func ParsePrivateKey(s string) (*rsa.PrivateKey, error) {
	block, err := decodePEM(s)
	if err != nil {
		return nil, err
	}
	rk, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		k, err8 := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err8 != nil {
			return nil, fmt.Errorf("auth: private key: %w", err8)
		}
		var ok bool
		if rk, ok = k.(*rsa.PrivateKey); !ok {
			return nil, errors.New("auth: private key is not RSA")
		}
	}
	if rk.N.BitLen() < keyBits {
		return nil, fmt.Errorf("auth: private key has %d bits, need at least %d", rk.N.BitLen(), keyBits)
	}
	return rk, nil
}
