package user

// Rate limits at the entrance: attempts to log in and to register, whatever
// their outcome, are counted per window (rateLimit.windowSeconds) in fixed
// windows, per client address and per account (the username asked for), and
// refused past their limit with ErrRateLimited (429 user.rate_limited, with
// the seconds to the window's end). They bound what one address or one
// account can make the service hash, and write into the audit log, whatever
// the gateway does: the limits live here, so direct RPC callers meet them
// too. A login that the lockouts refuse (limits.go) costs nothing and is not
// counted; a trusted device's logins count per device, not per address or
// account, so that no flood of someone else's stops the owner's browser.
//
// Like the failure counters, buckets are records that expire with their
// window; processes sharing a store may lose a concurrent increment.

import (
	"context"
	"errors"
	"strings"
	"time"
)

// keyRate prefixes the rate buckets: rate/<bucket>/<key>.
const keyRate = "rate/"

// bucket is one rate limit an attempt counts against.
type bucket struct {
	key   string // store key
	limit int
}

// window is a bucket's value.
type window struct {
	Count int       `json:"count"`
	Start time.Time `json:"start"`
}

// takeRate counts one attempt against every bucket, or none and fails with
// a *waitError (ErrRateLimited) until the latest-ending full window ends
// when one of them is full.
func (h *Handler) takeRate(ctx context.Context, buckets []bucket) error {
	win := h.cfg.Current().RateLimit.Window()
	keys := make([]string, len(buckets))
	for i, b := range buckets {
		keys[i] = b.key
	}
	unlock := lockKeys(keys)
	defer unlock()
	now := h.now().UTC()
	ws := make([]window, len(buckets))
	var wait time.Duration
	for i, b := range buckets {
		var w window
		// Absent or unreadable: the bucket starts again.
		if err := h.repo.readJSON(ctx, b.key, &w); errors.Is(err, ErrStoreUnavailable) {
			return err
		}
		if left := w.Start.Add(win).Sub(now); left <= 0 || left > win {
			w = window{Start: now} // over (or from a longer window than now)
		} else if w.Count >= b.limit {
			wait = max(wait, left)
		}
		ws[i] = w
	}
	if wait > 0 {
		return &waitError{cause: ErrRateLimited, retryAfter: wait}
	}
	for i, b := range buckets {
		ws[i].Count++
		if err := h.repo.writeJSON(ctx, b.key, ws[i], ws[i].Start.Add(win).Sub(now)); err != nil {
			return err
		}
	}
	return nil
}

// loginBuckets are the rate limits of a login guarded by g.
func (h *Handler) loginBuckets(g *loginGuard) []bucket {
	r := h.cfg.Current().RateLimit
	if g.device != "" {
		return []bucket{{keyRate + "login-dev/" + g.device, r.LoginPerAccount}}
	}
	var bs []bucket
	for _, c := range g.counters {
		switch c.kind {
		case kindAccount:
			bs = append(bs, bucket{keyRate + "login-acct/" + c.key, r.LoginPerAccount})
		case kindAddress:
			bs = append(bs, bucket{keyRate + "login-addr/" + c.key, r.LoginPerAddress})
		}
	}
	return bs
}

// registerBuckets are the rate limits of registering name (well formed) from
// addr.
func (h *Handler) registerBuckets(name, addr string) []bucket {
	r := h.cfg.Current().RateLimit
	return []bucket{
		{keyRate + "register-addr/" + counterAddr(truncate(addr, 64)), r.RegisterPerAddress},
		{keyRate + "register-acct/" + strings.ToLower(name), r.RegisterPerAccount},
	}
}
