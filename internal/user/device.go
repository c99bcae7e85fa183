package user

// Device tokens: the OWASP device-cookie defence against lockouts turned on an
// account's owner. A successful login returns a token that names the
// account, a random device id and an expiry, authenticated with HMAC-SHA256.
// A later login that presents it for the same account is from a trusted
// device: the account's lockouts against untrusted devices (per address,
// per account and address, account-wide) do not refuse it; its own failures
// are counted per device, and past login.maxFailures the token is treated as
// absent (limits.go).
//
// HMAC rather than a signature: only the user service ever checks the token
// (the gateway carries it as an opaque cookie), so a public key would serve
// no one, and HMAC costs microseconds where an RSA signature costs a
// millisecond per login. The key is derived from the private key that signs
// access tokens (auth.JWT.DeriveKey): every user instance holds it already,
// there is no new secret to distribute, and rotating the keys revokes every
// device token.

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"
)

// deviceTTL is how long a device stays trusted after its last login.
const deviceTTL = 90 * 24 * time.Hour

// maxDeviceToken bounds the token a client may send.
const maxDeviceToken = 256

// deviceClaims are what a device token says.
type deviceClaims struct {
	User    string `json:"u"` // the account's id
	Device  string `json:"d"` // random device id
	Expires int64  `json:"e"` // unix seconds
}

// keyDeriver is an auth.Auth that can derive keys from its private key.
type keyDeriver interface {
	DeriveKey(purpose string) []byte
}

// deviceKey is the HMAC key of device tokens, nil when the handler's auth
// cannot derive one (then no device is ever trusted).
func (h *Handler) deviceKey() []byte {
	if d, ok := h.auth.(keyDeriver); ok {
		return d.DeriveKey("device token v1")
	}
	return nil
}

// issueDevice returns a device token for the account and device, and when it
// expires; "" when there is no key.
func (h *Handler) issueDevice(userID, device string) (string, time.Time) {
	key := h.deviceKey()
	if key == nil {
		return "", time.Time{}
	}
	exp := h.now().Add(deviceTTL).UTC().Truncate(time.Second)
	payload, _ := json.Marshal(deviceClaims{User: userID, Device: device, Expires: exp.Unix()})
	p := base64.RawURLEncoding.EncodeToString(payload)
	return p + "." + base64.RawURLEncoding.EncodeToString(deviceMAC(key, p)), exp
}

// trustedDevice returns the device id of tok when it is a device token of
// userID that has not expired; ok is false for anything else.
func (h *Handler) trustedDevice(tok, userID string) (device string, ok bool) {
	key := h.deviceKey()
	if key == nil || tok == "" || len(tok) > maxDeviceToken || userID == "" {
		return "", false
	}
	p, sig, found := strings.Cut(tok, ".")
	if !found {
		return "", false
	}
	mac, err := base64.RawURLEncoding.Strict().DecodeString(sig)
	if err != nil || !hmac.Equal(mac, deviceMAC(key, p)) {
		return "", false
	}
	payload, err := base64.RawURLEncoding.Strict().DecodeString(p)
	if err != nil {
		return "", false
	}
	var c deviceClaims
	if json.Unmarshal(payload, &c) != nil || c.User != userID || c.Device == "" || h.now().Unix() >= c.Expires {
		return "", false
	}
	return c.Device, true
}

func deviceMAC(key []byte, payload string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// newDeviceID is a random device id.
func newDeviceID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand does not fail on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}
