package activities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/docker/sandbox"
	"github.com/gradeflow/gradeflow/store"
)

// TestExecuteClaim runs the execute step's claim through each way it can
// go: a tracked run closed with its worker and host, a superseded or
// quarantined submission declined without a container.
func TestExecuteClaim(t *testing.T) {
	okResult := `{"ok":true,"kind":"streaming","exit_code":0}`
	dead := contract.Run{ActivityID: "11", Attempt: 1, Worker: "9@h0", Host: "h0", Started: time.Now()}
	tests := []struct {
		name        string
		status      contract.Status
		claim       *store.ClaimResult
		wantFailure string
		wantRun     bool // a container ran
		wantEnd     contract.RunEnd
	}{
		{name: "tracked run", status: contract.StatusPending, wantRun: true, wantEnd: contract.RunCompleted},
		{name: "superseded: declined", status: contract.StatusSuperseded, wantFailure: "final " + contract.Superseded},
		{name: "quarantined: declined", claim: &store.ClaimResult{Claim: store.ClaimQuarantined, Dead: 3, Runs: []contract.Run{dead, dead, dead}},
			wantFailure: "final " + contract.Quarantined},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := newFakeStore()
			asg, files := stageWordcount(st)
			st.subs["s1"] = store.Submission{ID: "s1", Status: tc.status, SupersededBy: "s2", Stage: contract.StageQueued}
			st.claim = tc.claim
			sb := &fakeSandbox{run: func(spec sandbox.Spec) (sandbox.Result, error) {
				return sandbox.Result{Stdout: bundleResult(t, okResult, map[string]string{"./output/part-00000": "a\t2\n"})}, nil
			}}
			cfg := DefaultConfig()
			cfg.WorkDir = t.TempDir()
			a := &Activities{Files: st, Submissions: st, Sandbox: sb, Config: cfg, Worker: "42@exec-host", Host: "exec-host"}
			plan := contract.Plan{
				Request: contract.Request{SubmissionID: "s1", Assignment: "wc", Student: "ada", WorkflowID: "submission-s1"},
				Config:  asg, Runtime: contract.RuntimeStreaming, Files: files,
			}
			var exec contract.Execution
			err := runActivity(t, a, a.Execute, plan, &exec)
			if got := failureOf(err); got != tc.wantFailure {
				t.Fatalf("failure %q (%v), want %q", got, err, tc.wantFailure)
			}
			if (len(sb.specs) == 1) != tc.wantRun {
				t.Fatalf("%d containers, want one: %v", len(sb.specs), tc.wantRun)
			}
			if tc.claim != nil {
				var appErr *temporal.ApplicationError
				var runs []contract.Run
				if !errors.As(err, &appErr) || appErr.Details(&runs) != nil || len(runs) != 3 || runs[0].Worker != "9@h0" {
					t.Errorf("quarantine details %+v, want the dead runs", runs)
				}
			}
			if !tc.wantRun {
				return
			}
			runs := st.subs["s1"].RunList()
			if len(runs) != 1 || len(exec.Runs) != 1 {
				t.Fatalf("tracker %+v, result %+v: want one run each", runs, exec.Runs)
			}
			r := runs[0]
			if r.Worker != "42@exec-host" || r.Host != "exec-host" || r.Attempt != 1 || r.Ended == nil || r.End != tc.wantEnd ||
				exec.Runs[0].Worker != r.Worker || exec.Runs[0].End != r.End || exec.Runs[0].Ended == nil {
				t.Errorf("run %+v (result %+v), want closed %s by 42@exec-host", r, exec.Runs[0], tc.wantEnd)
			}
		})
	}
}

// TestRunEnd maps an attempt's error to how its run ended.
func TestRunEnd(t *testing.T) {
	tests := []struct {
		err  error
		want contract.RunEnd
	}{
		{nil, contract.RunCompleted},
		{contract.NewStudentFailure(contract.Grade{Outcome: contract.OutcomeTimeLimit}), contract.RunStudent},
		{temporal.NewCanceledError(), contract.RunCanceled},
		{errors.New("docker: connection refused"), contract.RunFailed},
	}
	for _, tc := range tests {
		if got := runEnd(tc.err); got != tc.want {
			t.Errorf("runEnd(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}

// TestCloseRunRetries: a run whose end cannot be written at once (the
// store briefly unreachable) is closed by retries, while the attempt
// repeats its latest heartbeat, so that the next attempt does not count
// it as a worker death. Retries that never succeed end within
// CloseRunFor, and that run does count.
func TestCloseRunRetries(t *testing.T) {
	tests := []struct {
		name      string
		failures  int // CloseRun calls that fail first
		closeFor  time.Duration
		wantClose bool
	}{
		{name: "closed at once", failures: 0, closeFor: 10 * time.Second, wantClose: true},
		{name: "transient failure: retried", failures: 3, closeFor: 10 * time.Second, wantClose: true},
		{name: "store gone for good: bounded", failures: 1 << 20, closeFor: 300 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := newFakeStore()
			asg, files := stageWordcount(st)
			st.subs["s1"] = store.Submission{ID: "s1", Status: contract.StatusPending, Stage: contract.StageQueued}
			var mu sync.Mutex
			var events []string // "beat <details>" and "close"
			st.closeRun = func(call int) error {
				mu.Lock()
				events = append(events, "close")
				mu.Unlock()
				if call <= tc.failures {
					return errors.New("server selection error: context deadline exceeded")
				}
				return nil
			}
			sb := &fakeSandbox{run: func(sandbox.Spec) (sandbox.Result, error) {
				return sandbox.Result{Stdout: bundleResult(t, `{"ok":true,"exit_code":0}`, map[string]string{"./output/part-00000": "a\t2\n"})}, nil
			}}
			cfg := DefaultConfig()
			cfg.WorkDir = t.TempDir()
			cfg.HeartbeatEvery = 10 * time.Millisecond
			cfg.CloseRunFor = tc.closeFor
			a := &Activities{Files: st, Submissions: st, Sandbox: sb, Config: cfg, Worker: "42@h", Host: "h"}
			a.recordHeartbeat = func(_ context.Context, details ...any) {
				mu.Lock()
				events = append(events, fmt.Sprint(append([]any{"beat"}, details...)...))
				mu.Unlock()
			}
			plan := contract.Plan{
				Request: contract.Request{SubmissionID: "s1", Assignment: "wc", Student: "ada", WorkflowID: "submission-s1"},
				Config:  asg, Runtime: contract.RuntimeStreaming, Files: files,
			}
			start := time.Now()
			if err := runActivity(t, a, a.Execute, plan, nil); err != nil {
				t.Fatalf("execute: %v (a close that fails must not fail the step)", err)
			}
			if elapsed := time.Since(start); elapsed > tc.closeFor+5*time.Second {
				t.Errorf("execute took %s, beyond CloseRunFor %s", elapsed, tc.closeFor)
			}
			if want := tc.failures + 1; tc.wantClose && st.closes != want {
				t.Errorf("%d CloseRun calls, want %d", st.closes, want)
			}

			// While the close was retried, the attempt repeated its latest
			// details, the step's last heartbeat.
			mu.Lock()
			first := slices.Index(events, "close")
			var last string
			for _, e := range events[:first] {
				if strings.HasPrefix(e, "beat") {
					last = e
				}
			}
			beats := 0
			for _, e := range events[first:] {
				if e == "close" {
					continue
				}
				beats++
				if e != last {
					t.Errorf("heartbeat %q while closing, want the latest details %q", e, last)
				}
			}
			mu.Unlock()
			if tc.failures > 0 && (last == "" || beats == 0) {
				t.Errorf("no heartbeat while the close was retried (latest before it %q)", last)
			}

			// The next attempt counts this run dead only if it was never closed.
			next := contract.Run{ActivityID: "0", Attempt: 2, Worker: "43@h", Host: "h", Started: time.Now()}
			runs := st.subs["s1"].RunList()
			if len(runs) != 1 {
				t.Fatalf("runs %+v, want one", runs)
			}
			next.ActivityID = runs[0].ActivityID
			st.closeRun = nil
			claim, err := st.ClaimRun(context.Background(), "s1", next, 1)
			if err != nil {
				t.Fatal(err)
			}
			wantDead := 0
			if !tc.wantClose {
				wantDead = 1
			}
			if claim.Dead != wantDead || (claim.Claim == store.ClaimQuarantined) != (wantDead > 0) {
				t.Errorf("next attempt: %d dead, claim %v; want %d dead", claim.Dead, claim.Claim, wantDead)
			}
		})
	}
}

// TestSettlePrevious: before it claims, an attempt asks Temporal how its
// predecessor with an open run ended. A failure the attempt reported
// itself (its close gave up) closes that run, and it does not count
// toward quarantine; a timeout (its worker died) leaves it open, and it
// counts; so does an unknown end.
func TestSettlePrevious(t *testing.T) {
	errTemporal := errors.New("temporal unreachable")
	tests := []struct {
		name     string
		answer   func() (bool, error) // nil: no PreviousTimedOut
		closed   bool                 // the previous run was closed already
		wantEnd  contract.RunEnd      // the previous run's end after the claim
		wantDead int
		wantAsk  bool
	}{
		{name: "failed, not timed out: closed, not counted", answer: func() (bool, error) { return false, nil }, wantEnd: contract.RunFailed, wantAsk: true},
		{name: "timed out: its worker died", answer: func() (bool, error) { return true, nil }, wantDead: 1, wantAsk: true},
		{name: "Temporal does not answer: counted", answer: func() (bool, error) { return false, errTemporal }, wantDead: 1, wantAsk: true},
		{name: "no Temporal: counted, as before", wantDead: 1},
		{name: "closed already: Temporal not asked", answer: func() (bool, error) { return false, nil }, closed: true, wantEnd: contract.RunCanceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := newFakeStore()
			started := time.Now().Add(-time.Minute).UTC()
			prev := contract.Run{ActivityID: "11", Attempt: 1, Worker: "9@h0", Host: "h0", Started: started}
			if tc.closed {
				ended := started.Add(time.Second)
				prev.Ended, prev.End = &ended, contract.RunCanceled
			}
			st.subs["s1"] = store.Submission{ID: "s1", Status: contract.StatusPending, Stage: contract.StageQueued,
				Runs: map[string]store.Run{store.RunKey("11", 1): store.Run(prev)}}
			a := &Activities{Files: st, Submissions: st, Config: DefaultConfig()}
			asked := false
			if tc.answer != nil {
				a.PreviousTimedOut = func(_ context.Context, workflowID, activityID string) (bool, error) {
					asked = true
					if workflowID != "submission-s1" || activityID != "11" {
						t.Errorf("asked about %s %s", workflowID, activityID)
					}
					return tc.answer()
				}
			}
			run := contract.Run{ActivityID: "11", Attempt: 2, Worker: "42@h", Host: "h", Started: time.Now().UTC()}
			a.settlePrevious(context.Background(), log.NewStructuredLogger(slog.New(slog.DiscardHandler)), "submission-s1", "s1", run)
			if asked != tc.wantAsk {
				t.Errorf("Temporal asked: %v, want %v", asked, tc.wantAsk)
			}
			claim, err := st.ClaimRun(context.Background(), "s1", run, 1)
			if err != nil {
				t.Fatal(err)
			}
			if claim.Dead != tc.wantDead || (claim.Claim == store.ClaimQuarantined) != (tc.wantDead > 0) {
				t.Errorf("claim: %d dead, %v; want %d dead", claim.Dead, claim.Claim, tc.wantDead)
			}
			var got contract.Run
			for _, r := range st.subs["s1"].RunList() {
				if r.Attempt == 1 {
					got = r
				}
			}
			if got.End != tc.wantEnd || (got.Ended != nil) != (tc.wantEnd != "") || got.Worker != "9@h0" {
				t.Errorf("previous run %+v, want end %q", got, tc.wantEnd)
			}
		})
	}
}
