package platform

import (
	"net/http"

	"go-micro.dev/v4/transport"
	"go-micro.dev/v4/transport/headers"
)

// mucpTransport is go-micro's http transport for a mucp server, handing the
// server each request's id under the key the server reads.
//
// go-micro's rpc server keys the requests in flight on one connection by
// msg.Header["Micro-ID"] (headers.ID), but the http transport gives it the
// request's headers in Go's canonical form, "Micro-Id". Every request on a
// connection so gets the key "": one that arrives before the previous
// request's goroutines have let go of that key is handed to the previous,
// finished request's pseudo-socket and never served, and its caller waits
// out its whole timeout. Measured before this wrapper: one call in a few
// hundred lost when a caller sends its calls one after another on one
// connection.
type mucpTransport struct{ transport.Transport }

// Listen listens as go-micro's transport does; its sockets carry the id.
func (t mucpTransport) Listen(addr string, opts ...transport.ListenOption) (transport.Listener, error) {
	l, err := t.Transport.Listen(addr, opts...)
	if err != nil {
		return nil, err
	}
	return idListener{l}, nil
}

// idListener hands the server idSockets.
type idListener struct{ transport.Listener }

// Accept serves each connection with fn, through an idSocket.
func (l idListener) Accept(fn func(transport.Socket)) error {
	return l.Listener.Accept(func(s transport.Socket) { fn(idSocket{s}) })
}

// idSocket copies a received request's canonical "Micro-Id" header to
// headers.ID.
type idSocket struct{ transport.Socket }

// canonicalID is headers.ID as the http transport delivers it.
var canonicalID = http.CanonicalHeaderKey(headers.ID)

// Recv receives the next request and files its id under headers.ID.
func (s idSocket) Recv(m *transport.Message) error {
	if err := s.Socket.Recv(m); err != nil {
		return err
	}
	if id, ok := m.Header[canonicalID]; ok {
		m.Header[headers.ID] = id
	}
	return nil
}
