package sso

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"
	"go-micro.dev/v4/store"

	"github.com/portal-go/portal/internal/kv"
)

// keyPrefix is where signing keys live in the store: one per rotation
// period, "oidc/key/<period>".
const keyPrefix = "oidc/key/"

// KeyRing holds the provider's signing keys in the store. Time is cut into
// periods of RotateEvery; the key of the current period signs, and the key of
// the period before stays published, so that a token signed just before a
// rotation verifies until it expires (RotateEvery is longer than any token
// lives). The first instance to need a period's key makes it; every other
// instance reads that one (a conditional put through kv.Store).
// Private keys are stored sealed (AES-256-GCM) with a key derived from the
// user service's own token key, so a copy of the store alone does not give
// them away.
type KeyRing struct {
	st          store.Store
	kv          kv.Store
	seal        cipher.AEAD
	rotateEvery time.Duration
	now         func() time.Time
	bits        int

	mu    sync.Mutex
	cache map[int64]*signingKey
}

// NewKeyRing returns the key ring in st, written through k (the same
// records, atomically); sealKey (32 bytes) seals the private keys.
func NewKeyRing(st store.Store, k kv.Store, sealKey []byte, rotateEvery time.Duration) (*KeyRing, error) {
	block, err := aes.NewCipher(sealKey)
	if err != nil {
		return nil, fmt.Errorf("sso: seal key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &KeyRing{st: st, kv: k, seal: aead, rotateEvery: rotateEvery,
		now: time.Now, bits: 2048, cache: map[int64]*signingKey{}}, nil
}

// signingKey is one RS256 key; it is both an op.SigningKey and an op.Key.
type signingKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k *signingKey) Algorithm() jose.SignatureAlgorithm          { return jose.RS256 }
func (k *signingKey) ID() string                                  { return k.id }
func (k *signingKey) Use() string                                 { return "sig" }

// Key is the private key when signing; KeySet publishes public keys (publicKey).
func (k *signingKey) Key() any { return k.key }

// publicKey is a signing key as published in the JWKS.
type publicKey struct{ *signingKey }

func (p publicKey) Key() any { return &p.key.PublicKey }

// storedKey is a signing key's record.
type storedKey struct {
	ID string `json:"kid"`
	// Sealed is the PKCS#1 private key, sealed; its nonce first.
	Sealed  []byte    `json:"sealed"`
	Created time.Time `json:"created"`
}

func (r *KeyRing) period(t time.Time) int64 { return t.UnixNano() / int64(r.rotateEvery) }

// Current returns the key that signs now.
func (r *KeyRing) Current(ctx context.Context) (op.SigningKey, error) {
	return r.forPeriod(r.period(r.now()), true)
}

// Published returns the keys a verifier may meet: the current one and, if
// it exists, the previous period's.
func (r *KeyRing) Published(ctx context.Context) ([]op.Key, error) {
	p := r.period(r.now())
	cur, err := r.forPeriod(p, true)
	if err != nil {
		return nil, err
	}
	keys := []op.Key{publicKey{cur}}
	prev, err := r.forPeriod(p-1, false)
	if err != nil {
		return nil, err
	}
	if prev != nil {
		keys = append(keys, publicKey{prev})
	}
	return keys, nil
}

// forPeriod reads period p's key; when there is none it makes it if create,
// else returns nil.
func (r *KeyRing) forPeriod(p int64, create bool) (*signingKey, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if k, ok := r.cache[p]; ok {
		return k, nil
	}
	k, err := r.read(p)
	if err != nil || (k == nil && !create) {
		return nil, err
	}
	if k == nil {
		if k, err = r.make(p); err != nil {
			return nil, err
		}
	}
	for q := range r.cache {
		if q < p-1 {
			delete(r.cache, q)
		}
	}
	r.cache[p] = k
	return k, nil
}

func (r *KeyRing) read(p int64) (*signingKey, error) {
	recs, err := r.st.Read(keyPrefix + strconv.FormatInt(p, 10))
	if errors.Is(err, store.ErrNotFound) || (err == nil && len(recs) == 0) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("sso: read signing key: %w", err)
	}
	var sk storedKey
	if err := json.Unmarshal(recs[0].Value, &sk); err != nil {
		return nil, fmt.Errorf("sso: signing key record: %w", err)
	}
	ns := r.seal.NonceSize()
	if len(sk.Sealed) < ns {
		return nil, errors.New("sso: signing key record is truncated")
	}
	der, err := r.seal.Open(nil, sk.Sealed[:ns], sk.Sealed[ns:], []byte(sk.ID))
	if err != nil {
		return nil, errors.New("sso: the signing key does not open with this service's key (were the token keys changed?)")
	}
	key, err := x509.ParsePKCS1PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("sso: signing key: %w", err)
	}
	return &signingKey{id: sk.ID, key: key}, nil
}

// make creates period p's key and stores it unless another instance did
// first, in which case that one is returned.
func (r *KeyRing) make(p int64) (*signingKey, error) {
	key, err := rsa.GenerateKey(rand.Reader, r.bits)
	if err != nil {
		return nil, err
	}
	sk := storedKey{ID: randomID(12), Created: r.now().UTC()}
	nonce := make([]byte, r.seal.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	sk.Sealed = r.seal.Seal(nonce, nonce, x509.MarshalPKCS1PrivateKey(key), []byte(sk.ID))
	v, err := json.Marshal(sk)
	if err != nil {
		return nil, err
	}
	name := keyPrefix + strconv.FormatInt(p, 10)
	// Kept while it is current or published (two periods), and one more.
	won, err := r.kv.Apply(kv.PutOp(name, v, 3*r.rotateEvery).When(kv.Absent))
	if err != nil {
		return nil, fmt.Errorf("sso: store signing key: %w", err)
	}
	if !won {
		return r.read(p) // another instance made it first
	}
	return &signingKey{id: sk.ID, key: key}, nil
}
