package portal

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/portal-go/portal/internal/user"
)

// ResetPassword is `portal admin reset-password <username>`: it opens the
// store the user service would use, chosen as `portal user` chooses it
// (MICRO_STORE and its address from args or the environment, else the file
// store under --data_dir), and gives the account a temporary password that
// must be changed at the next sign-in (user.ResetPasswordInStore). Redis
// is shared, so that works while Portal runs; the embedded file store is
// held by a running Portal, which must be stopped first.
func ResetPassword(ctx context.Context, args []string, username string, out io.Writer, log *slog.Logger) error {
	s, err := ParseService("user", args, out)
	if err != nil {
		return err
	}
	st, k, err := serviceStore(s, log)
	if err != nil {
		return fmt.Errorf("open the user service's store (is an embedded Portal running on this data dir? stop it first): %w", err)
	}
	defer st.Close()
	repo := user.NewRepo(st)
	if k != nil {
		repo = repo.WithKV(k)
	}
	pw, ended, err := user.ResetPasswordInStore(ctx, repo, username)
	if err != nil {
		return fmt.Errorf("reset the password of %q: %w", username, err)
	}
	fmt.Fprintf(out, "The password of %s is now (shown once; it must be changed at the next sign-in):\n%s\n", username, pw)
	if ended > 0 {
		fmt.Fprintf(out, "%d session(s) deleted.\n", ended)
	}
	return nil
}
