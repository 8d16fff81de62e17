//go:build stack

package test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/intake"
)

// Fault tests. `make test` runs them with small counts; `make chaos` runs
// the full ones (CHAOS_KILLS=20).

func envInt(key string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(key)); err == nil && n > 0 {
		return n
	}
	return def
}

// submitRetrying submits until the stack accepts it, as a portal retries on
// an error: submitting is idempotent by ID, so a retry never grades twice.
func submitRetrying(ctx context.Context, id, dir string, files map[string][]byte) error {
	for {
		_, err := stk.intake().Submit(ctx, intake.Submission{
			ID: id, Assignment: "wordcount", Student: "chaos", Files: files,
		})
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("submit %s: %w (last error: %v)", id, ctx.Err(), err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// awaitResult waits for a submission's result, riding out server restarts.
func awaitResult(ctx context.Context, id string) (contract.Result, error) {
	for {
		var res contract.Result
		err := stk.temporal.GetWorkflow(ctx, contract.WorkflowID(id), "").Get(ctx, &res)
		if err == nil {
			return res, nil
		}
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("await %s: %w (last error: %v)", id, ctx.Err(), err)
		case <-time.After(time.Second):
		}
	}
}

// checkGradedOnce asserts that every submission passed, was executed,
// compared and recorded exactly once, its read model caught up, and that
// no container of it is left.
func checkGradedOnce(t *testing.T, ctx context.Context, ids []string) {
	t.Helper()
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := awaitResult(ctx, id)
			if err != nil {
				t.Error(err)
				return
			}
			if res.Status != contract.StatusGraded || res.Outcome != contract.OutcomePassed {
				t.Errorf("%s: %s/%s, want graded/passed: %s", id, res.Status, res.Outcome, res.Feedback)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, id := range ids {
		for _, act := range []string{"Sanity", "Execute", "Compare", "Record"} {
			if n := countCompleted(t, ctx, id, act); n != 1 {
				t.Errorf("%s: %s completed %d times, want 1", id, act, n)
			}
		}
		waitFor(t, time.Minute, "read model of "+id+" to catch up", func() (bool, error) {
			sub, err := stk.store.Submission(ctx, id)
			return err == nil && sub.Stage == contract.StageDone && sub.Outcome == contract.OutcomePassed, err
		})
	}
	waitFor(t, time.Minute, "no containers left", func() (bool, error) {
		for _, id := range ids {
			if cs, err := stk.containers(ctx, id); err != nil || len(cs) > 0 {
				return false, err
			}
		}
		return true, nil
	})
}

// TestChaosExecuteWorkerKills SIGKILLs the execute worker again and again
// while it runs jobs, replacing it each time. The replacements do not
// quarantine (GRADEFLOW_QUARANTINE_AFTER=0): here the harness kills
// workers at random, and a job caught by three kills in a row would
// rightly be held for staff (TestQuarantineAfterWorkerDeaths tests that).
func TestChaosExecuteWorkerKills(t *testing.T) {
	kills := envInt("CHAOS_KILLS", 3)
	executeMu.Lock()
	defer executeMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(2*kills+5)*time.Minute)
	defer cancel()
	dir := filepath.Join(stk.root, exampleDir, "submissions/python-correct")
	files := readFiles(t, dir)
	batch := randHex(3)
	var ids []string
	for i := 0; i < kills+4; i++ {
		id := fmt.Sprintf("chaos-kill-%s-%d", batch, i)
		if err := submitRetrying(ctx, id, dir, files); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for k := 0; k < kills; k++ {
		stk.waitRunning(t, ctx, ids...)
		executeWorker.Kill()
		w, err := stk.startWorker(ctx, fmt.Sprintf("worker-execute-chaos-%d", k), "execute", "GRADEFLOW_QUARANTINE_AFTER=0")
		if err != nil {
			t.Fatal(err)
		}
		executeWorker = w
		time.Sleep(time.Duration(500+rand.IntN(2000)) * time.Millisecond)
	}
	checkGradedOnce(t, ctx, ids)
}

// TestChaosTemporalRestart restarts the Temporal server (file DB) in the
// middle of a burst of submissions.
func TestChaosTemporalRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir := filepath.Join(stk.root, exampleDir, "submissions/python-correct")
	files := readFiles(t, dir)
	batch := randHex(3)
	n := envInt("CHAOS_BURST", 10)
	ids := make([]string, n)
	errs := make(chan error, n)
	go func() {
		for i := range ids {
			ids[i] = fmt.Sprintf("chaos-temporal-%s-%d", batch, i)
			errs <- submitRetrying(ctx, ids[i], dir, files)
			time.Sleep(200 * time.Millisecond)
		}
	}()
	// Let a few in, then take the server down under the rest.
	for i := 0; i < 3; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := stk.restartTemporal(ctx, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	for i := 3; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	checkGradedOnce(t, ctx, ids)
}

// TestChaosMongoOutage makes MongoDB unreachable to every gradeflow process
// for a while (30 s by default) in the middle of grading.
func TestChaosMongoOutage(t *testing.T) {
	outage := time.Duration(envInt("CHAOS_MONGO_OUTAGE_SECONDS", 30)) * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir := filepath.Join(stk.root, exampleDir, "submissions/python-correct")
	files := readFiles(t, dir)
	batch := randHex(3)
	var ids []string
	for i := 0; i < 6; i++ {
		id := fmt.Sprintf("chaos-mongo-%s-%d", batch, i)
		if err := submitRetrying(ctx, id, dir, files); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	waitFor(t, 2*time.Minute, "grading under way", func() (bool, error) {
		sub, err := stk.store.Submission(ctx, ids[0])
		return err == nil && sub.Stage != contract.StageSubmitted && sub.Stage != contract.StageSanity, err
	})
	stk.mongoProxy.down()
	time.Sleep(outage)
	if err := stk.mongoProxy.up(); err != nil {
		t.Fatal(err)
	}
	checkGradedOnce(t, ctx, ids)
}
