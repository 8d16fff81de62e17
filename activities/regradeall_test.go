package activities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/store"
)

// fakeRegrades is a planned run and the intake that starts its items.
type fakeRegrades struct {
	run      store.RegradeRun
	missing  bool
	refuse   map[int]string // items that can never start
	fail     map[int]error  // items whose start fails (each once)
	failMark error
	starts   []int          // items StartRegrade was asked to start
	marks    map[int]string // items marked: "" started, else refused
}

func (f *fakeRegrades) RegradeRun(_ context.Context, id string) (store.RegradeRun, error) {
	if f.missing || id != f.run.ID {
		return store.RegradeRun{}, fmt.Errorf("regrade %s: %w", id, store.ErrNotFound)
	}
	return f.run, nil
}

func (f *fakeRegrades) StartRegrade(_ context.Context, run store.RegradeRun, i int) (string, error) {
	f.starts = append(f.starts, i)
	if err := f.fail[i]; err != nil {
		delete(f.fail, i)
		return "", err
	}
	return f.refuse[i], nil
}

func (f *fakeRegrades) MarkRegrade(_ context.Context, runID string, i int, refused string) error {
	if f.failMark != nil {
		return f.failMark
	}
	if f.marks == nil {
		f.marks = map[int]string{}
	}
	f.marks[i] = refused
	return nil
}

// plannedRun is a run of n planned items.
func plannedRun(n int) store.RegradeRun {
	run := store.RegradeRun{ID: "rg-1", Assignment: "wc", WorkflowID: "regrade-rg-1"}
	for i := range n {
		from := fmt.Sprintf("s%d", i)
		run.Items = append(run.Items, store.RegradeItem{From: from, To: from + "-r1", Student: from})
	}
	return run
}

// startRegrades runs StartRegrades in the activity test environment, as
// an attempt that finds heartbeat details (if any) from an earlier one, and
// returns its result and the last progress it heartbeated.
func startRegrades(t *testing.T, f *fakeRegrades, details *contract.RegradesStarted) (contract.RegradesStarted, contract.RegradesStarted, error) {
	t.Helper()
	a := &Activities{Regrades: f}
	var last contract.RegradesStarted
	a.recordHeartbeat = func(_ context.Context, d ...any) { last = d[0].(contract.RegradesStarted) }
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(log.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	if details != nil {
		env.SetHeartbeatDetails(*details)
	}
	val, err := env.ExecuteActivity(a.StartRegrades, contract.StartRegradesRequest{RunID: "rg-1"})
	var got contract.RegradesStarted
	if err == nil {
		if err := val.Get(&got); err != nil {
			t.Fatalf("decode result: %v", err)
		}
	}
	return got, last, err
}

// TestStartRegrades: every planned item is started in order and marked;
// one that can never start is marked with its error and the run goes on;
// an attempt resumes after the last item it heartbeated, and skips items
// marked already.
func TestStartRegrades(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		run        store.RegradeRun
		refuse     map[int]string
		details    *contract.RegradesStarted
		want       contract.RegradesStarted
		wantStarts []int
		wantMarks  map[int]string
	}{
		{name: "fresh run, one item's files gone", run: plannedRun(4), refuse: map[int]string{1: "submission s1 has no stored files"},
			want: contract.RegradesStarted{Next: 4, Started: 3, Refused: 1}, wantStarts: []int{0, 1, 2, 3},
			wantMarks: map[int]string{0: "", 1: "submission s1 has no stored files", 2: "", 3: ""}},
		{name: "resumes from the heartbeat", run: plannedRun(4), details: &contract.RegradesStarted{Next: 2, Started: 1, Refused: 1},
			want: contract.RegradesStarted{Next: 4, Started: 3, Refused: 1}, wantStarts: []int{2, 3}, wantMarks: map[int]string{2: "", 3: ""}},
		{name: "items marked already are skipped", run: func() store.RegradeRun {
			r := plannedRun(3)
			r.Items[0].StartedAt = &now
			r.Items[1].Error = "regrade ID too long"
			return r
		}(), want: contract.RegradesStarted{Next: 3, Started: 2, Refused: 1}, wantStarts: []int{2}, wantMarks: map[int]string{2: ""}},
		{name: "empty run", run: plannedRun(0), want: contract.RegradesStarted{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeRegrades{run: tt.run, refuse: tt.refuse}
			got, last, err := startRegrades(t, f, tt.details)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("result %+v, want %+v", got, tt.want)
			}
			if len(tt.wantStarts) > 0 && last != tt.want {
				t.Errorf("last heartbeat %+v, want %+v", last, tt.want)
			}
			if !reflect.DeepEqual(f.starts, tt.wantStarts) {
				t.Errorf("started items %v, want %v", f.starts, tt.wantStarts)
			}
			if !reflect.DeepEqual(f.marks, tt.wantMarks) {
				t.Errorf("marks %v, want %v", f.marks, tt.wantMarks)
			}
		})
	}
}

// TestStartRegradesRetries: a store or Temporal failure while starting an
// item is returned to be retried (not recorded as the item's error); the
// retried attempt, given the heartbeat of the failed one, starts only the
// items left. A missing run is not retried.
func TestStartRegradesRetries(t *testing.T) {
	f := &fakeRegrades{run: plannedRun(4), fail: map[int]error{2: errors.New("temporal: unavailable")}}
	_, last, err := startRegrades(t, f, nil)
	if failureOf(err) != "retry" {
		t.Fatalf("infrastructure failure: %v, want a retryable error", err)
	}
	if want := (contract.RegradesStarted{Next: 2, Started: 2}); last != want {
		t.Errorf("heartbeat before the failure %+v, want %+v", last, want)
	}
	if _, marked := f.marks[2]; marked {
		t.Errorf("the failed item was marked %q", f.marks[2])
	}
	f.starts = nil
	got, _, err := startRegrades(t, f, &last)
	if err != nil {
		t.Fatal(err)
	}
	if want := (contract.RegradesStarted{Next: 4, Started: 4}); got != want || !reflect.DeepEqual(f.starts, []int{2, 3}) {
		t.Errorf("retry: %+v starting %v, want %+v starting [2 3]", got, f.starts, want)
	}

	f = &fakeRegrades{run: plannedRun(2), failMark: errors.New("mongodb: connection refused")}
	if _, _, err := startRegrades(t, f, nil); failureOf(err) != "retry" {
		t.Errorf("mark failure: %v, want a retryable error", err)
	}

	f = &fakeRegrades{run: plannedRun(2), missing: true}
	if _, _, err := startRegrades(t, f, nil); failureOf(err) != "config" {
		t.Errorf("missing run: %v, want a ConfigFailure", err)
	}
}
