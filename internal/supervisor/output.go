package supervisor

import (
	"bytes"
	"io"
	"regexp"
	"strings"
	"sync"
)

// keepLines is how many of its last lines the supervisor keeps per service
// for Runtime.Logs.
const keepLines = 1000

// maxLine bounds a line: a longer run of bytes without a newline is passed
// on in pieces of this size.
const maxLine = 64 << 10

// output is where a child's stdout and stderr go: each whole line is written
// to w after "[name] ", and the last ones are kept for Runtime.Logs. go-micro's
// runtime copies both streams into it, each from a goroutine of its own, so
// Write is safe for concurrent use; a line the child writes in one piece (as
// slog does) stays whole.
type output struct {
	prefix string
	w      io.Writer

	mu      sync.Mutex
	partial []byte
	ring    []string // the last lines, ring[next] the oldest once full
	next    int
	full    bool
}

// newOutput returns an output for the child name, keeping keep lines (0:
// none).
func newOutput(name string, w io.Writer, keep int) *output {
	return &output{prefix: "[" + name + "] ", w: w, ring: make([]string, keep)}
}

// Write never fails: the runtime copies with io.MultiWriter, which would stop
// copying (and leave the child blocked on a full pipe) at the first error.
func (o *output) Write(b []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.partial = append(o.partial, b...)
	for {
		i := bytes.IndexByte(o.partial, '\n')
		if i < 0 && len(o.partial) < maxLine {
			break
		}
		end, skip := i, i+1
		if i < 0 || i > maxLine {
			end, skip = maxLine, maxLine
		}
		o.line(string(o.partial[:end]))
		o.partial = o.partial[skip:]
	}
	if len(o.partial) == 0 {
		o.partial = nil // let a large buffer go
	}
	return len(b), nil
}

// line passes one line on and keeps it. Called with mu held.
func (o *output) line(s string) {
	_, _ = io.WriteString(o.w, o.prefix+s+"\n") // best effort: the log must not stop the child
	if len(o.ring) == 0 {
		return
	}
	o.ring[o.next] = redact(s)
	o.next = (o.next + 1) % len(o.ring)
	if o.next == 0 {
		o.full = true
	}
}

// Last returns up to n of the last lines kept, oldest first.
func (o *output) Last(n int) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var kept []string
	if o.full {
		kept = append(kept, o.ring[o.next:]...)
	}
	kept = append(kept, o.ring[:o.next]...)
	if n < len(kept) {
		kept = kept[len(kept)-n:]
	}
	return kept
}

// lastError returns the last line kept if it reports an error (a slog line
// at level ERROR, or what cmd/portal prints when it exits with one), else "".
func (o *output) lastError() string {
	last := o.Last(1)
	if len(last) == 0 {
		return ""
	}
	if l := last[0]; strings.Contains(l, "level=ERROR") || strings.HasPrefix(l, "portal: ") {
		return l
	}
	return ""
}

// secret matches a logged password (user logs the first admin's generated
// one, once): Runtime.Logs shows any admin the lines kept, so they are kept
// without it. The supervisor's stderr gets the line as written.
var secret = regexp.MustCompile(`\bpassword=("(?:[^"\\]|\\.)*"|\S+)`)

func redact(s string) string {
	return secret.ReplaceAllString(s, "password=[redacted]")
}
