package portal

// The admin socket: how `portal admin reset-password` reaches a running
// user service whose embedded (file) store it cannot open, because the
// service holds the file. The service listens on <data_dir>/admin.sock, a
// unix socket of mode 0600 in the data dir (0700), and serves one operation;
// a connection whose peer is neither this process's user nor root is closed
// unanswered (SO_PEERCRED, where the system has it). A stale socket file
// left by a process that died is replaced at start; a file that is not a
// socket, or a socket another process answers on, is left alone (the
// service starts without the admin socket and says so).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/portal-go/portal/internal/platform"
	"github.com/portal-go/portal/internal/user"
)

// AdminSocket is the admin socket's file name in the data dir.
const AdminSocket = "admin.sock"

// adminResetPath is the one operation the admin socket serves.
const adminResetPath = "/v1/reset-password"

// adminReset is the request and answer of adminResetPath.
type adminReset struct {
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	SessionsEnded int32  `json:"sessions_ended,omitempty"`
	Error         string `json:"error,omitempty"`
}

// serveAdminSocket makes svc listen on the admin socket in dataDir once it
// starts, and serve h's command-line reset on it until it stops; the
// socket file is removed then. A socket that cannot be made does not stop
// the service: it is logged, and the command line then needs Portal
// stopped.
func serveAdminSocket(svc *platform.Service, dataDir string, h *user.Handler, log *slog.Logger) {
	path := filepath.Join(dataDir, AdminSocket)
	var ln net.Listener
	svc.OnStart(func(context.Context) error {
		var err error
		if ln, err = listenAdmin(path); err != nil {
			log.Warn("admin socket not served: portal admin reset-password needs Portal stopped", "err", err)
		}
		return nil
	})
	svc.Background(func(ctx context.Context) {
		if ln == nil {
			return
		}
		srv := &http.Server{Handler: adminHandler(h, log), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			<-ctx.Done()
			srv.Close() // closes ln, which removes the file
		}()
		if err := srv.Serve(peerChecked{ln, log}); !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin socket", "err", err)
		}
	})
}

// listenAdmin listens on the unix socket path, mode 0600, replacing a stale
// socket file that no process answers on.
func listenAdmin(path string) (net.Listener, error) {
	fi, err := os.Lstat(path)
	switch {
	case err == nil && fi.Mode().Type() != fs.ModeSocket:
		return nil, fmt.Errorf("%s exists and is not a socket: left alone", path)
	case err == nil:
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s: another process answers on it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("stale admin socket: %w", err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	// The peer check covers the moment between Listen and Chmod.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// peerChecked accepts only connections whose peer is this process's user
// or root.
type peerChecked struct {
	net.Listener
	log *slog.Logger
}

// Accept returns the next connection from an allowed peer.
func (l peerChecked) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		uid, err := peerUID(c)
		if err == nil && (uid == os.Geteuid() || uid == 0) {
			return c, nil
		}
		l.log.Warn("admin socket: connection refused", "peer_uid", uid, "err", err)
		c.Close()
	}
}

// adminHandler serves adminResetPath with h.
func adminHandler(h *user.Handler, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+adminResetPath, func(w http.ResponseWriter, r *http.Request) {
		var req adminReset
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil || req.Username == "" {
			writeAdmin(w, http.StatusBadRequest, adminReset{Error: "name the account"})
			return
		}
		pw, ended, err := h.ResetPasswordFromCommandLine(r.Context(), req.Username)
		switch {
		case errors.Is(err, user.ErrNotFound):
			writeAdmin(w, http.StatusNotFound, adminReset{Error: user.ErrNotFound.Error()})
		case err != nil:
			log.Error("admin socket: reset-password", "user", req.Username, "err", err)
			writeAdmin(w, http.StatusInternalServerError, adminReset{Error: err.Error()})
		default:
			log.Info("admin socket: password reset from the command line", "user", req.Username)
			writeAdmin(w, http.StatusOK, adminReset{Password: pw, SessionsEnded: ended})
		}
	})
	return mux
}

func writeAdmin(w http.ResponseWriter, status int, a adminReset) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(a)
}

// errNoAdminSocket: no process answers on the admin socket.
var errNoAdminSocket = errors.New("no admin socket")

// resetOverSocket asks the process serving dataDir's admin socket to reset
// username's password; errNoAdminSocket when none answers.
func resetOverSocket(ctx context.Context, dataDir, username string) (string, int32, error) {
	path := filepath.Join(dataDir, AdminSocket)
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return "", 0, errNoAdminSocket
	}
	c.Close()
	cl := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
	body, _ := json.Marshal(adminReset{Username: username})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://portal"+adminResetPath, bytes.NewReader(body))
	if err != nil {
		return "", 0, err
	}
	rsp, err := cl.Do(req)
	if err != nil {
		return "", 0, fmt.Errorf("admin socket %s: %w", path, err)
	}
	defer rsp.Body.Close()
	var a adminReset
	if err := json.NewDecoder(rsp.Body).Decode(&a); err != nil {
		return "", 0, fmt.Errorf("admin socket %s: %s: %w", path, rsp.Status, err)
	}
	if rsp.StatusCode != http.StatusOK {
		return "", 0, fmt.Errorf("the running Portal answered: %s", a.Error)
	}
	return a.Password, a.SessionsEnded, nil
}
