// Package codec stands in for github.com/ugorji/go/codec in Portal's build
// (go.mod replaces the module with this one).
//
// Only gin imports it, for its MessagePack binding and renderer: gin picks
// them for a request whose Content-Type is application/x-msgpack when a
// handler binds with c.Bind or c.ShouldBind, and for c.MsgPack. Portal binds
// JSON and forms by name and renders JSON and HTML, so it never reaches them;
// gin's own way to leave them out is the nomsgpack build tag, which a plain
// go build ./cmd/portal cannot carry. Every call here fails with ErrLeftOut.
package codec

import (
	"errors"
	"io"
)

// ErrLeftOut is what decoding and encoding return.
var ErrLeftOut = errors.New("MessagePack is left out of Portal's build")

// MsgpackHandle configures MessagePack; it has nothing to configure here.
type MsgpackHandle struct{}

// Decoder decodes nothing.
type Decoder struct{}

// Encoder encodes nothing.
type Encoder struct{}

// NewDecoder returns a Decoder whose Decode fails.
func NewDecoder(r io.Reader, h *MsgpackHandle) *Decoder { return &Decoder{} }

// Decode fails with ErrLeftOut.
func (*Decoder) Decode(v any) error { return ErrLeftOut }

// NewEncoder returns an Encoder whose Encode fails.
func NewEncoder(w io.Writer, h *MsgpackHandle) *Encoder { return &Encoder{} }

// Encode fails with ErrLeftOut.
func (*Encoder) Encode(v any) error { return ErrLeftOut }
