// Package mail sends Portal's messages (address verification, password
// reset, invitations): composed from templates in one place (messages.go),
// queued in an outbox in the user service's store (outbox.go) and sent by a
// background job through a Sender: SMTP (smtp.go) or, without SMTP settings,
// a directory and the log (dir.go).
package mail

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strings"
)

// Message is one mail to one recipient, with a plain-text and an HTML body.
type Message struct {
	// ID is unique per message (the outbox's key and the Message-ID).
	ID      string `json:"id"`
	To      string `json:"to"`
	Subject string `json:"subject"`
	Text    string `json:"text,omitempty"`
	HTML    string `json:"html,omitempty"`
	// Kind names the template it was made from, for logs and admins.
	Kind Kind `json:"kind"`
}

// Sender delivers a message now, or fails. A *PermanentError says that
// trying again cannot help (the server refused the recipient).
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// PermanentError is a refusal that a retry would meet again (an SMTP 5xx).
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return "mail: refused: " + e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// ErrBadAddress: an address is not one mailbox, or has a header in it.
var ErrBadAddress = errors.New("mail: not a valid email address")

// ValidAddress checks that addr is one plain mailbox (local@domain, no
// display name, no line breaks), at most 254 characters, and returns it
// trimmed.
func ValidAddress(addr string) (string, error) {
	addr = strings.TrimSpace(addr)
	if addr == "" || len(addr) > 254 || strings.ContainsAny(addr, "\r\n<>\" ,;") {
		return "", ErrBadAddress
	}
	a, err := mail.ParseAddress(addr)
	if err != nil || a.Address != addr || a.Name != "" || !strings.Contains(addr[strings.LastIndexByte(addr, '@')+1:], ".") {
		return "", fmt.Errorf("%w: %q", ErrBadAddress, addr)
	}
	return addr, nil
}
