package platform

import (
	"testing"
	"time"

	"go-micro.dev/v4/transport"
	"go-micro.dev/v4/transport/headers"
)

// The server's socket files a request's id under headers.ID, the key
// go-micro's rpc server looks it up by; go-micro's own http transport
// delivers it only as "Micro-Id" (which the test checks too, so that a
// go-micro that fixes this shows the wrapper can go).
func TestMucpTransportFilesTheRequestID(t *testing.T) {
	for name, tc := range map[string]struct {
		tr     transport.Transport
		wantID string
	}{
		"go-micro's http transport": {transport.NewHTTPTransport(), ""},
		"mucpTransport":             {mucpTransport{transport.NewHTTPTransport()}, "7"},
	} {
		t.Run(name, func(t *testing.T) {
			l, err := tc.tr.Listen("127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			got := make(chan transport.Message, 1)
			served := make(chan error, 1)
			go func() {
				served <- l.Accept(func(s transport.Socket) {
					var m transport.Message
					if err := s.Recv(&m); err != nil {
						t.Errorf("Recv: %v", err)
					}
					got <- m
				})
			}()
			c, err := transport.NewHTTPTransport().Dial(l.Addr(), transport.WithStream())
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = c.Close() }()
			if err := c.Send(&transport.Message{Header: map[string]string{headers.ID: "7", headers.Endpoint: "User.Health"}}); err != nil {
				t.Fatal(err)
			}
			select {
			case m := <-got:
				if id := m.Header[headers.ID]; id != tc.wantID {
					t.Errorf("Header[%q] = %q, want %q", headers.ID, id, tc.wantID)
				}
				if id := m.Header["Micro-Id"]; id != "7" {
					t.Errorf(`Header["Micro-Id"] = %q, want "7"`, id)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the server received nothing")
			}
			_ = l.Close()
			<-served
		})
	}
}
