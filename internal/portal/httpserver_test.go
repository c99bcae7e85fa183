package portal

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// A client that sends headers slowly (slowloris) is cut off at the
// read-header timeout instead of holding the connection forever.
func TestHTTPServerCutsSlowClients(t *testing.T) {
	parallel(t)
	srv := NewHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 {
		t.Fatalf("timeouts: read-header %v, read %v, write %v, idle %v: all must be set",
			srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n"); err != nil { // and never the blank line
		t.Fatal(err)
	}
	limit := srv.ReadHeaderTimeout + 3*time.Second
	if err := conn.SetReadDeadline(time.Now().Add(limit)); err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(conn) // returns when the server closes the connection
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the server still held the half-sent request after %v", limit)
	}
	if took := time.Since(start); took < srv.ReadHeaderTimeout-time.Second {
		t.Fatalf("closed after %v, before the read-header timeout %v: something else closed it", took, srv.ReadHeaderTimeout)
	}
}

// Only the user service may hold the private key.
func TestServiceKeysPrivateKeyOnlyInUser(t *testing.T) {
	for _, name := range []string{"web", "system"} {
		if _, err := serviceKeys(ServiceSettings{Name: name, PublicKey: "p", PrivateKey: "k"}, nil); err == nil {
			t.Errorf("%s accepted the private key", name)
		}
	}
	if _, err := serviceKeys(ServiceSettings{Name: "user", PublicKey: "p"}, nil); err == nil {
		t.Errorf("user accepted a public key without its private key")
	}
	if _, err := serviceKeys(ServiceSettings{Name: "web", DataDir: t.TempDir()}, nil); err == nil {
		t.Errorf("web started without any public key")
	}
}
