// Package passkeytest is a software WebAuthn authenticator for tests: one
// ES256 credential that answers navigator.credentials.create and .get as a
// browser at Origin would, for the relying party RPID, with "none"
// attestation. Tests change its fields to forge what an attacker would
// send: another origin or RP ID, another account's user handle, a sign
// count that went back, a garbled answer.
package passkeytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"slices"
	"testing"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
)

// Key is one credential of a software authenticator. Copying a Key clones
// the authenticator, sign count and all.
type Key struct {
	key *ecdsa.PrivateKey
	// ID is the credential's id.
	ID []byte
	// Count is the sign count, incremented by each Get.
	Count uint32
	// UserID is the user handle the credential was made for (Create sets
	// it).
	UserID []byte
	// RPID and Origin are what the answers claim.
	RPID, Origin string
	// Garbled cuts every answer in half.
	Garbled bool
}

// New makes a credential for origin and rpID.
func New(t testing.TB, origin, rpID string) *Key {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	return &Key{key: k, ID: id, RPID: rpID, Origin: origin}
}

var b64 = base64.RawURLEncoding

// options reads the challenge and user id of a ceremony's publicKey
// options (JSON).
func options(t testing.TB, opts []byte) (challenge string, userID []byte) {
	t.Helper()
	var o struct {
		Challenge string `json:"challenge"`
		User      struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	if err := json.Unmarshal(opts, &o); err != nil {
		t.Fatalf("passkey options: %v", err)
	}
	uid, _ := b64.DecodeString(o.User.ID)
	return o.Challenge, uid
}

func (k *Key) clientData(typ, challenge string) []byte {
	b, _ := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": k.Origin, "crossOrigin": false})
	return b
}

func (k *Key) authData(flags byte, attested []byte) []byte {
	rp := sha256.Sum256([]byte(k.RPID))
	out := append(rp[:], flags)
	out = binary.BigEndian.AppendUint32(out, k.Count)
	return append(out, attested...)
}

// Create answers navigator.credentials.create for the publicKey options
// opts: the PublicKeyCredential as JSON.
func (k *Key) Create(t testing.TB, opts []byte) []byte {
	t.Helper()
	challenge, uid := options(t, opts)
	k.UserID = uid
	x, y := k.key.X.FillBytes(make([]byte, 32)), k.key.Y.FillBytes(make([]byte, 32))
	cose, err := webauthncbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: x, -3: y})
	if err != nil {
		t.Fatal(err)
	}
	att := make([]byte, 16) // AAGUID
	att = binary.BigEndian.AppendUint16(att, uint16(len(k.ID)))
	att = append(append(att, k.ID...), cose...)
	// Flags: user present, user verified, attested credential data.
	obj, err := webauthncbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": k.authData(0x45, att)})
	if err != nil {
		t.Fatal(err)
	}
	return k.credential(map[string]any{"clientDataJSON": b64.EncodeToString(k.clientData("webauthn.create", challenge)), "attestationObject": b64.EncodeToString(obj)})
}

// Get answers navigator.credentials.get for the publicKey options opts, as
// the user UserID: the PublicKeyCredential as JSON.
func (k *Key) Get(t testing.TB, opts []byte) []byte {
	t.Helper()
	challenge, _ := options(t, opts)
	k.Count++
	cd := k.clientData("webauthn.get", challenge)
	ad := k.authData(0x05, nil) // user present and verified
	cdHash := sha256.Sum256(cd)
	sum := sha256.Sum256(append(slices.Clone(ad), cdHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, k.key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return k.credential(map[string]any{"clientDataJSON": b64.EncodeToString(cd), "authenticatorData": b64.EncodeToString(ad),
		"signature": b64.EncodeToString(sig), "userHandle": b64.EncodeToString(k.UserID)})
}

func (k *Key) credential(response map[string]any) []byte {
	b, _ := json.Marshal(map[string]any{"id": b64.EncodeToString(k.ID), "rawId": b64.EncodeToString(k.ID), "type": "public-key", "response": response})
	if k.Garbled {
		return b[:len(b)/2]
	}
	return b
}
