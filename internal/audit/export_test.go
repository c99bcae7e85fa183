package audit

import "github.com/nats-io/nats.go/jetstream"

// WrapJetStream puts wrap's answer between s and its JetStream context, for
// tests that stage what the server answers.
func WrapJetStream(s *NATSStream, wrap func(jetstream.JetStream) jetstream.JetStream) {
	s.js = wrap(s.js)
}

// Connected reports whether s's NATS connection is up, as the client sees
// it.
func Connected(s *NATSStream) bool { return s.nc.IsConnected() }
