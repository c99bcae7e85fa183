package portal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"go-micro.dev/v4/store"

	"github.com/portal-go/portal/internal/audit"
	"github.com/portal-go/portal/internal/filestore"
	"github.com/portal-go/portal/internal/user"
)

// ResetPassword is `portal admin reset-password <username>`: it gives the
// account a temporary password that must be changed at the next sign-in,
// in the store the user service would use, chosen as `portal user` chooses
// it (MICRO_STORE and its address from args or the environment, else the
// file store under --data_dir). When a running Portal holds that file
// store, the command asks it over its admin socket (adminsock.go), so that
// the reset is audited and the sessions end at once on every gateway;
// otherwise it opens the store itself (Redis is shared: running or not).
func ResetPassword(ctx context.Context, args []string, username string, out io.Writer, log *slog.Logger) error {
	s, err := ParseService("user", args, out)
	if err != nil {
		return err
	}
	if s.Store == nil {
		pw, ended, err := resetOverSocket(ctx, s.DataDir, username)
		if !errors.Is(err, errNoAdminSocket) {
			if err != nil {
				return fmt.Errorf("reset the password of %q: %w", username, err)
			}
			printReset(out, username, pw, int(ended))
			return nil
		}
	}
	st, k, err := serviceStore(s, log)
	if err != nil {
		return fmt.Errorf("open the user service's store (is a Portal starting, or one without an admin socket running, on this data dir?): %w", err)
	}
	defer st.Close()
	repo := user.NewRepo(st)
	if k != nil {
		repo = repo.WithKV(k)
	}
	pw, ended, entry, err := user.ResetPasswordInStore(ctx, repo, username)
	if err != nil {
		return fmt.Errorf("reset the password of %q: %w", username, err)
	}
	printReset(out, username, pw, ended)
	if err := recordOffline(ctx, s, entry, log); err != nil {
		fmt.Fprintf(out, "The reset was not audited: %v\n", err)
	}
	return nil
}

func printReset(out io.Writer, username, pw string, ended int) {
	fmt.Fprintf(out, "The password of %s is now (shown once; it must be changed at the next sign-in):\n%s\n", username, pw)
	if ended > 0 {
		fmt.Fprintf(out, "%d session(s) deleted.\n", ended)
	}
}

// recordOffline records e where the system service will read it: the
// durable queue in its file store (no Portal runs on it now), or the
// audit stream the settings name.
func recordOffline(ctx context.Context, s ServiceSettings, e audit.Entry, log *slog.Logger) error {
	if s.Store == nil {
		st, err := filestore.New(filepath.Join(s.DataDir, "store"), store.Database("system"), store.Table("system"))
		if err != nil {
			return err
		}
		defer st.Close()
		stream, err := audit.NewDurableStream(st, 0)
		if err != nil {
			return err
		}
		defer stream.Close()
		return audit.NewPublisher(stream, log).Publish(ctx, e)
	}
	stream, err := auditStream(s, log)
	if err != nil {
		return err
	}
	defer stream.Close()
	if _, ok := stream.(*audit.MemoryStream); ok {
		return errors.New("no audit stream reaches the system service: set --events nats (PORTAL_EVENTS)")
	}
	return audit.NewPublisher(stream, log).Publish(ctx, e)
}
