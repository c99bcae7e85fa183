package audit_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go-micro.dev/v4/store"

	"github.com/portal-go/portal/internal/audit"
	"github.com/portal-go/portal/internal/filestore"
	"github.com/portal-go/portal/internal/testenv/leak"
	"github.com/portal-go/portal/internal/testenv/poll"
)

// crashDirEnv makes this test binary the process that
// TestDurableStreamSurvivesKill kills (TestMain runs publishAndWait).
const crashDirEnv = "PORTAL_TEST_DURABLE_STREAM_DIR"

const crashEntries = 20

// TestMain is also the crash test's child (publishAndWait), and fails the
// package when its tests leave a goroutine running.
func TestMain(m *testing.M) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		if err := publishAndWait(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	leak.VerifyTestMain(m)
}

// publishAndWait publishes entries that nothing consumes, says so, and
// waits to be killed.
func publishAndWait(dir string) error {
	fs, err := filestore.New(dir, store.Database("system"), store.Table("system"))
	if err != nil {
		return err
	}
	s, err := audit.NewDurableStream(fs, 0)
	if err != nil {
		return err
	}
	pub := audit.NewPublisher(s, nil)
	for i := range crashEntries {
		if err := pub.Publish(context.Background(), audit.Entry{ID: fmt.Sprint("k", i), Kind: audit.KindLogin, ActorName: "kim"}); err != nil {
			return err
		}
	}
	fmt.Println("published")
	time.Sleep(time.Hour) // until killed
	return nil
}

// TestDurableStreamSurvivesKill: entries published in the embedded mode and
// not yet stored when the process is killed (SIGKILL) are stored by the
// next start's consumer. (A MemoryStream lost them.)
func TestDurableStreamSurvivesKill(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	published := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.TrimSpace(sc.Text()) == "published" {
				published <- true
				return
			}
		}
		published <- false
	}()
	select {
	case ok := <-published:
		if !ok {
			_ = cmd.Wait()
			t.Fatal("the publisher ended without publishing")
		}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("the publisher did not publish in 60 s")
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = cmd.Wait()

	fs, err := filestore.New(dir, store.Database("system"), store.Table("system"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fs.Close() })
	s, err := audit.NewDurableStream(fs, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	l := audit.NewLog(fs, audit.LogOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { audit.NewConsumer(s, l, nil).Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	poll.Wait(t, 30*time.Second, "the killed process's entries", func() bool {
		p, err := l.List(context.Background(), audit.Query{User: "kim", Total: true})
		return err == nil && p.Total == crashEntries
	})
	// Acknowledged: a third start finds nothing queued.
	poll.Wait(t, 30*time.Second, "the queue to empty", func() bool {
		n, err := fs.Count("q", "", 0)
		return err == nil && n == 0
	})
}
