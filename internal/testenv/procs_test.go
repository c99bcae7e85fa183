package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestProblems(t *testing.T) {
	p := &Proc{Name: "user-1", logPath: filepath.Join(t.TempDir(), "user-1.log")}
	log := strings.Join([]string{
		`time=2026-12-06T07:58:45.000Z level=WARN msg="before the window"`,
		`time=2026-12-06T07:58:46.000Z level=INFO msg=request status=200`,
		`time=2026-12-06T07:58:46.020Z level=ERROR msg="rpc failed" status=503`,
		`2026/12/06 07:58:46 WARN a line of another logger`,
		`time=2026-12-06T07:58:47.280Z level=WARN msg="outbox: retrying"`,
		``,
	}, "\n")
	if err := os.WriteFile(p.logPath, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	since := time.Date(2026, 12, 6, 7, 58, 46, 0, time.UTC)
	got := p.Problems(since)
	want := "--- user-1: 2 warnings and errors since 07:58:46.000 ---\n" +
		`time=2026-12-06T07:58:46.020Z level=ERROR msg="rpc failed" status=503` + "\n" +
		`time=2026-12-06T07:58:47.280Z level=WARN msg="outbox: retrying"`
	if got != want {
		t.Errorf("Problems:\n%s\nwant:\n%s", got, want)
	}
	if got := p.Problems(since.Add(time.Minute)); got != "" {
		t.Errorf("Problems after the last line: %q, want none", got)
	}
}
