//go:build stack

package test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/gradeflow/gradeflow/contract"
)

// TestWorkerKilledDuringExecute kills the execute worker with SIGKILL while
// its container runs a job, starts a new worker, and checks that the
// submission is graded exactly once, correctly, and that no container is
// left behind.
func TestWorkerKilledDuringExecute(t *testing.T) {
	executeMu.Lock()
	defer executeMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	id := "kill-" + randHex(4)
	done := make(chan struct{})
	var res struct {
		outcome contract.Outcome
		status  contract.Status
	}
	go func() {
		defer close(done)
		r := submit(t, ctx, id, filepath.Join(stk.root, "test/testdata/slow-correct"))
		res.outcome, res.status = r.Outcome, r.Status
	}()

	// Wait until the job's container runs, then kill its worker.
	stk.waitRunning(t, ctx, id)
	executeWorker.Kill()
	cs, err := stk.containers(ctx, id)
	if err != nil || len(cs) == 0 {
		t.Fatalf("after SIGKILL the attempt's container should still be there (err %v)", err)
	}
	replacement, err := stk.startWorker(ctx, "worker-execute-replacement", "execute")
	if err != nil {
		t.Fatal(err)
	}
	executeWorker = replacement

	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("submission not graded after the worker was killed")
	}
	if t.Failed() {
		return
	}
	if res.status != contract.StatusGraded || res.outcome != contract.OutcomePassed {
		t.Fatalf("got %s/%s, want graded/passed", res.status, res.outcome)
	}
	sub, err := stk.store.Submission(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if sub.Attempts["execute"] < 2 {
		t.Errorf("execute attempts %d, want at least 2 (the killed one and the retry)", sub.Attempts["execute"])
	}
	for _, act := range []string{"Execute", "Compare", "Record"} {
		if n := countCompleted(t, ctx, id, act); n != 1 {
			t.Errorf("%s completed %d times, want exactly 1", act, n)
		}
	}
	waitFor(t, 30*time.Second, "no container left for "+id, func() (bool, error) {
		cs, err := stk.containers(ctx, id)
		return err == nil && len(cs) == 0, err
	})
}
