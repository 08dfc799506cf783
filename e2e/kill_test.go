package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/natsauth"
)

// A real sla process is killed (SIGKILL) in the middle of a run. The run order it held
// goes back to JetStream after the ack wait, a second sla process runs it again, and the
// run ends with exactly one result and one audit row: nothing lost, nothing doubled.
func TestServiceKilledMidJobIsFinishedByAnotherReplica(t *testing.T) {
	s := startStack(t, stackOptions{services: []string{}})
	bin := buildSLA(t)
	statuses := natsCollect(t, s, events.StatusSubject(catalog.CheckSLAAndOverdue))
	results := natsCollect(t, s, events.ResultSubject(catalog.CheckSLAAndOverdue))

	// Hold the tasks table so the run blocks in its first query: "mid-job" on demand.
	ctx := context.Background()
	lock, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback(ctx)
	if _, err := lock.Exec(ctx, "LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}

	first := startSLA(t, bin, s)
	if _, err := s.nats.JS.Publish(ctx, events.TriggerSubject(catalog.CheckSLAAndOverdue), []byte(`{"reason":"kill test"}`)); err != nil {
		t.Fatal(err)
	}
	running := nextStatusOf(t, statuses, events.StateRunning)
	if err := first.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	startSLA(t, bin, s)
	// Redelivery waits out the ack wait of the run order.
	deadline := time.After(bus.RunAckWait + 30*time.Second)
	var r events.Result
	select {
	case m := <-results:
		if err := json.Unmarshal(m.Data, &r); err != nil {
			t.Fatal(err)
		}
	case <-deadline:
		t.Fatalf("no result within %s of the kill: the run held by the dead process was not taken over", bus.RunAckWait+30*time.Second)
	}
	if r.RunID != running.RunID || r.Status != events.StatusSuccess || r.Attempt != 2 {
		t.Fatalf("result = run %s status %s attempt %d; want run %s finished successfully on attempt 2", r.RunID, r.Status, r.Attempt, running.RunID)
	}
	waitFor(t, "the run's audit row", func() bool { return s.auditRows(r.RunID) == 1 })
	select {
	case m := <-results:
		t.Fatalf("a second result after the takeover: %s", m.Data)
	case <-time.After(500 * time.Millisecond):
	}
}

// buildSLA builds the sla service's binary into a temporary directory.
func buildSLA(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sla")
	if out, err := exec.Command("go", "build", "-o", bin, "../services/sla/cmd/sla").CombinedOutput(); err != nil {
		t.Fatalf("go build sla: %v\n%s", err, out)
	}
	return bin
}

// startSLA starts bin as the sla service of stack s, killed at the test's end if it
// is still running; env (such as OPS_ADDR=...) comes after, and wins over, the defaults.
func startSLA(t *testing.T, bin string, s *stack, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append(append(append(os.Environ(), s.nats.Env(natsauth.SLA)...), "DATABASE_URL="+s.dbURL, "OPS_ADDR=127.0.0.1:0", "LOG_FORMAT=text", "LOG_LEVEL=warn"), env...)
	cmd.Stdout, cmd.Stderr = testWriter{t}, testWriter{t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd
}

func nextStatusOf(t *testing.T, ch <-chan *nats.Msg, state string) events.Status {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case m := <-ch:
			var st events.Status
			if err := json.Unmarshal(m.Data, &st); err != nil {
				t.Fatalf("status is not JSON: %v", err)
			}
			if st.State == state {
				return st
			}
		case <-timeout:
			t.Fatalf("no %s status within 30s", state)
		}
	}
}
