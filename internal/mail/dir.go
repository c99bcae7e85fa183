package mail

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// Dir is the sender of the embedded mode without SMTP settings: each
// message is written to a file under a directory (mode 0600: the links in
// it sign in) and to the log, so that a new user can still follow a link.
type Dir struct {
	dir, from string
	log       *slog.Logger
}

// NewDir writes messages under dir (created, mode 0700), From from.
func NewDir(dir, from string, log *slog.Logger) (*Dir, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("mail: %w", err)
	}
	return &Dir{dir: dir, from: from, log: log}, nil
}

// String names the directory, for the start-up log.
func (d *Dir) String() string { return "files in " + d.dir + " and the log (no PORTAL_SMTP_ADDRESS)" }

// Send writes m to <dir>/<time>-<id>.eml and logs its text.
func (d *Dir) Send(ctx context.Context, m Message) error {
	now := time.Now()
	body, err := encode(d.from, m, now)
	if err != nil {
		return &PermanentError{Err: err}
	}
	name := filepath.Join(d.dir, now.UTC().Format("20060102T150405.000000000Z")+"-"+m.ID+".eml")
	if err := os.WriteFile(name, body, 0o600); err != nil {
		return fmt.Errorf("mail: %w", err)
	}
	d.log.Info("mail written (no SMTP server configured)", "to", m.To, "subject", m.Subject, "file", name, "text", m.Text)
	return nil
}
