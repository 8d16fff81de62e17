//go:build stack

package test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/gradeflow/gradeflow/contract"
)

// TestWorkerDrainsOnSIGTERM stops the execute worker with SIGTERM while it
// runs a job. With a stop timeout longer than the job, the job finishes on
// that worker (one attempt); with a shorter one, it is handed back and
// finished by the next worker (two attempts). Either way it is graded
// exactly once and no container is left.
func TestWorkerDrainsOnSIGTERM(t *testing.T) {
	cases := []struct {
		name         string
		stopTimeout  string
		wantAttempts int
	}{
		{"finishes within the bound", "60s", 1},
		{"handed back past the bound", "1s", 2},
	}
	executeMu.Lock()
	defer executeMu.Unlock()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			executeWorker.Terminate(30 * time.Second)
			w, err := stk.startWorker(ctx, "worker-execute-drain", "execute", "GRADEFLOW_STOP_TIMEOUT="+tc.stopTimeout)
			if err != nil {
				t.Fatal(err)
			}
			id := fmt.Sprintf("drain-%s-%d", randHex(3), tc.wantAttempts)
			dir := filepath.Join(stk.root, "test/testdata/slow-correct")
			if err := submitRetrying(ctx, id, dir, readFiles(t, dir)); err != nil {
				t.Fatal(err)
			}
			stk.waitRunning(t, ctx, id)
			stopped := make(chan struct{})
			go func() { w.Terminate(2 * time.Minute); close(stopped) }()
			// A replacement is needed only for the job handed back.
			if tc.wantAttempts > 1 {
				<-stopped
			}
			restoreExecuteWorker(t)
			<-stopped
			checkGradedOnce(t, ctx, []string{id})
			sub, err := stk.store.Submission(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if sub.Attempts["execute"] != tc.wantAttempts || sub.Outcome != contract.OutcomePassed {
				t.Errorf("execute attempts %d, outcome %s; want %d, passed", sub.Attempts["execute"], sub.Outcome, tc.wantAttempts)
			}
		})
	}
}

// TestWorkerServingAllQueuesDrains stops, with SIGTERM, one process that
// serves all three queues while it runs a job longer than its stop
// timeout. Its queues' workers stop together: the process exits within
// one stop timeout (plus the time to withdraw its slots and close its
// clients), not one per queue, and the job it hands back is graded once
// by the next worker.
func TestWorkerServingAllQueuesDrains(t *testing.T) {
	const stopTimeout = 2 * time.Second
	executeMu.Lock()
	defer executeMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	executeWorker.Terminate(30 * time.Second)
	w, err := stk.startWorker(ctx, "worker-all-queues", "sanity,execute,grade", "GRADEFLOW_STOP_TIMEOUT="+stopTimeout.String())
	if err != nil {
		t.Fatal(err)
	}
	id := "drain-all-" + randHex(3)
	dir := filepath.Join(stk.root, "test/testdata/slow-correct")
	if err := submitRetrying(ctx, id, dir, readFiles(t, dir)); err != nil {
		t.Fatal(err)
	}
	stk.waitRunning(t, ctx, id)
	start := time.Now()
	w.Terminate(2 * time.Minute)
	took := time.Since(start)
	if bound := stopTimeout + 10*time.Second; took > bound {
		t.Errorf("a worker serving three queues took %s to drain, beyond one stop timeout (%s) and slack: %s", took, stopTimeout, bound)
	}
	t.Logf("drained in %s (stop timeout %s)", took.Round(time.Millisecond), stopTimeout)
	if err := w.WaitLog(ctx, `"stopped"`); err != nil {
		t.Errorf("no clean stop: %v", err)
	}
	restoreExecuteWorker(t)
	checkGradedOnce(t, ctx, []string{id})
	sub, err := stk.store.Submission(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if sub.Attempts["execute"] != 2 {
		t.Errorf("execute attempts %d, want 2: the job was handed back past the stop timeout", sub.Attempts["execute"])
	}
}
