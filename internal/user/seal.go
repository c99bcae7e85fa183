package user

// TOTP keys at rest: the service must read a key to check codes, so it is
// stored sealed (AES-256-GCM, the account's id as associated data, so that
// a sealed key copied onto another account does not open) under a key
// derived (HKDF, auth.JWT.DeriveKey) from the private key that signs access
// tokens, as device tokens are (device.go): every user instance holds it,
// and a copy of the store alone does not give the keys away. A key stored
// in the clear by an earlier version is read as it is, and sealed at its
// next use.

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
)

// sealedPrefix starts a sealed TOTP key; a clear one is base32, which
// never holds ':'.
const sealedPrefix = "sealed1:"

// ErrNoSealKey: the service has no key to seal TOTP keys with (its auth
// cannot derive one).
var ErrNoSealKey = errors.New("user: no key to seal two-factor keys with")

// errUnsealable: a sealed TOTP key that this service's key does not open
// (the token keys changed, or the record was tampered with).
var errUnsealable = errors.New("user: the two-factor key cannot be opened with this service's key")

// totpAEAD is the cipher of TOTP keys, nil without a key.
func (h *Handler) totpAEAD() (cipher.AEAD, error) {
	d, ok := h.auth.(keyDeriver)
	if !ok {
		return nil, ErrNoSealKey
	}
	key := d.DeriveKey("totp secret v1")
	if key == nil {
		return nil, ErrNoSealKey
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// seal returns the TOTP key secret of account userID as it is stored.
func (h *Handler) seal(userID, secret string) (string, error) {
	aead, err := h.totpAEAD()
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return sealedPrefix + base64.RawStdEncoding.EncodeToString(aead.Seal(nonce, nonce, []byte(secret), []byte(userID))), nil
}

// unseal returns the TOTP key of account userID from its stored form;
// clear is true for a key stored in the clear by an earlier version.
func (h *Handler) unseal(userID, stored string) (secret string, clear bool, err error) {
	rest, sealed := strings.CutPrefix(stored, sealedPrefix)
	if !sealed {
		return stored, true, nil
	}
	aead, err := h.totpAEAD()
	if err != nil {
		return "", false, err
	}
	b, err := base64.RawStdEncoding.DecodeString(rest)
	if err != nil || len(b) < aead.NonceSize() {
		return "", false, errUnsealable
	}
	p, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], []byte(userID))
	if err != nil {
		return "", false, errUnsealable
	}
	return string(p), false, nil
}
