package intake

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/store"
)

// TestPlanItem: an item's "before" is the latest graded regrade of the
// submission, among those made before this one, else the submission
// itself; regrades still running, failed or of another submission do not
// count. Its regrade ID is the reserved number.
func TestPlanItem(t *testing.T) {
	v1 := &store.Grader{AssignmentRevision: 1, Image: "gradeflow/hadoop:dev"}
	v2 := &store.Grader{AssignmentRevision: 2, Image: "gradeflow/hadoop:dev"}
	orig := store.Submission{ID: "s1", Student: "ada", Stage: contract.StageDone, Status: contract.StatusGraded,
		Outcome: contract.OutcomePassed, Score: 100, MaxScore: 100, Grader: v1}
	graded := func(id string, score float64, g *store.Grader) store.Submission {
		return store.Submission{ID: id, Student: "ada", RegradeOf: "s1", Stage: contract.StageDone, Status: contract.StatusGraded,
			Outcome: contract.OutcomeWrongAnswer, Score: score, MaxScore: 100, Grader: g}
	}
	tests := []struct {
		name  string
		sub   store.Submission
		n     int
		found map[string]store.Submission
		want  store.RegradeItem
	}{
		{name: "first regrade: before is the original", sub: orig, n: 1,
			want: store.RegradeItem{From: "s1", To: "s1-r1", Student: "ada", BeforeID: "s1", BeforeScore: 100, BeforeMax: 100, Before: "passed", BeforeGrader: v1}},
		{name: "after a regrade: before is the latest graded one", sub: orig, n: 3,
			found: map[string]store.Submission{"s1-r1": graded("s1-r1", 10, v1), "s1-r2": graded("s1-r2", 40, v2)},
			want:  store.RegradeItem{From: "s1", To: "s1-r3", Student: "ada", BeforeID: "s1-r2", BeforeScore: 40, BeforeMax: 100, Before: "wrong_answer", BeforeGrader: v2}},
		{name: "running, failed and foreign regrades are skipped", sub: orig, n: 5,
			found: map[string]store.Submission{
				"s1-r1": graded("s1-r1", 10, nil),
				"s1-r2": {ID: "s1-r2", RegradeOf: "other", Stage: contract.StageDone, Status: contract.StatusGraded, Score: 77},
				"s1-r3": {ID: "s1-r3", RegradeOf: "s1", Stage: contract.StageDone, Status: contract.StatusError},
				"s1-r4": {ID: "s1-r4", RegradeOf: "s1", Stage: contract.StageRunning, Status: contract.StatusPending},
			},
			want: store.RegradeItem{From: "s1", To: "s1-r5", Student: "ada", BeforeID: "s1-r1", BeforeScore: 10, BeforeMax: 100, Before: "wrong_answer"}},
		{name: "a regrade numbered after this one does not count", sub: orig, n: 1,
			found: map[string]store.Submission{"s1-r2": graded("s1-r2", 40, v2)},
			want:  store.RegradeItem{From: "s1", To: "s1-r1", Student: "ada", BeforeID: "s1", BeforeScore: 100, BeforeMax: 100, Before: "passed", BeforeGrader: v1}},
		{name: "no outcome: the status is the before", sub: store.Submission{ID: "s2", Student: "bob", Stage: contract.StageDone, Status: contract.StatusError}, n: 1,
			want: store.RegradeItem{From: "s2", To: "s2-r1", Student: "bob", BeforeID: "s2", Before: "error"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := planItem(tt.sub, tt.n, tt.found); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("planned\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
	long := store.Submission{ID: fmt.Sprintf("%0128d", 0), Student: "cy"}
	if it := planItem(long, 1, nil); it.To != "" || it.Error == "" {
		t.Errorf("a regrade ID past 128 characters: %+v, want an item error", it)
	}
}

// TestEarlierRegrades: a plan reads a bounded number of a submission's
// latest regrades, newest first.
func TestEarlierRegrades(t *testing.T) {
	if got := earlierRegrades("s", 1); len(got) != 0 {
		t.Errorf("first regrade: %v", got)
	}
	if got := earlierRegrades("s", 3); !reflect.DeepEqual(got, []string{"s-r2", "s-r1"}) {
		t.Errorf("third regrade: %v", got)
	}
	if got := earlierRegrades("s", 100); len(got) != beforeLookback || got[0] != "s-r99" {
		t.Errorf("hundredth regrade: %d, first %v", len(got), got[0])
	}
}

// TestReport: each item is counted once, as planned, started (pending or
// done) or failed; pending lists every regrade not graded yet.
func TestReport(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	v2 := &store.Grader{AssignmentRevision: 2, Image: "img"}
	item := func(from string, mark func(*store.RegradeItem)) store.RegradeItem {
		it := store.RegradeItem{From: from, To: from + "-r1", Student: from, BeforeID: from, BeforeScore: 100, BeforeMax: 100, Before: "passed"}
		if mark != nil {
			mark(&it)
		}
		return it
	}
	started := func(it *store.RegradeItem) { it.StartedAt = &now }
	done := func(id string, score float64, outcome contract.Outcome) store.Submission {
		return store.Submission{ID: id, Stage: contract.StageDone, Status: contract.StatusGraded, Outcome: outcome, Score: score, MaxScore: 100, Grader: v2}
	}
	run := store.RegradeRun{ID: "rg-1", WorkflowID: "regrade-rg-1", Items: []store.RegradeItem{
		item("planned", nil),
		item("uploading", nil),
		item("unmarked", nil), // started, its mark not written yet
		item("running", started),
		item("same", started),
		item("worse", started),
		item("gone", func(it *store.RegradeItem) { it.Error = "submission gone: not found" }),
	}}
	after := map[string]store.Submission{
		"uploading-r1": {ID: "uploading-r1", Uploading: true, Stage: contract.StageSubmitted},
		"unmarked-r1":  {ID: "unmarked-r1", Stage: contract.StageQueued},
		"running-r1":   {ID: "running-r1", Stage: contract.StageRunning},
		"same-r1":      done("same-r1", 100, contract.OutcomePassed),
		"worse-r1":     done("worse-r1", 40, contract.OutcomeWrongAnswer),
	}
	rep := report(run, after)
	want := struct{ total, planned, started, done, failed, unchanged int }{7, 2, 4, 2, 1, 1}
	got := struct{ total, planned, started, done, failed, unchanged int }{rep.Total, rep.Planned, rep.Started, rep.Done, rep.Failed, rep.Unchanged}
	if got != want {
		t.Errorf("counts %+v, want %+v", got, want)
	}
	if wantPending := []string{"planned-r1", "uploading-r1", "unmarked-r1", "running-r1"}; !reflect.DeepEqual(rep.Pending, wantPending) {
		t.Errorf("pending %v, want %v", rep.Pending, wantPending)
	}
	wantChanged := []RegradeChange{
		{Student: "worse", From: "worse", To: "worse-r1", Before: 100, After: 40, MaxScore: 100, BeforeStatus: "passed", AfterStatus: "wrong_answer",
			BeforeID: "worse", AfterGrader: v2},
		{Student: "gone", From: "gone", To: "gone-r1", Before: 100, MaxScore: 100, BeforeStatus: "passed", Error: "submission gone: not found", BeforeID: "gone"},
	}
	if !reflect.DeepEqual(rep.Changed, wantChanged) {
		t.Errorf("changed\n%+v\nwant\n%+v", rep.Changed, wantChanged)
	}

	// A run from before the workflow started its items inline: an item
	// with a regrade ID is started.
	legacy := store.RegradeRun{ID: "rg-0", Items: []store.RegradeItem{item("old", nil)}}
	if rep := report(legacy, nil); rep.Planned != 0 || rep.Started != 1 || len(rep.Pending) != 1 {
		t.Errorf("legacy run: planned %d, started %d, pending %v", rep.Planned, rep.Started, rep.Pending)
	}
	// Just planned: nothing started, everything pending.
	if rep := report(run, nil); rep.Planned != 3 || rep.Started != 3 || len(rep.Pending) != 6 {
		t.Errorf("fresh plan: planned %d, started %d, pending %v", rep.Planned, rep.Started, rep.Pending)
	}
}

// TestRefusal: a regrade that can never start (the submission, its files
// or assignment gone, its ID taken, a bad field) is refused; anything
// else is returned to be retried.
func TestRefusal(t *testing.T) {
	tests := []struct {
		err     error
		refused bool
	}{
		{fmt.Errorf("submission s1: %w", store.ErrNotFound), true},
		{fmt.Errorf("read file: %w", store.ErrTooLarge), true},
		{fmt.Errorf("assignment wc no longer exists: %w", ErrUnknownAssignment), true},
		{fmt.Errorf("no stored files: %w", ErrConflict), true},
		{missing("files"), true},
		{fmt.Errorf("storing its files: %w", ErrBusy), false},
		{errors.New("find submission s1: connection refused"), false},
		{context.DeadlineExceeded, false},
	}
	for _, tt := range tests {
		refused, err := refusal(tt.err)
		if (refused != "") != tt.refused || (err != nil) == tt.refused {
			t.Errorf("%v: refused %q, error %v; want refused %v", tt.err, refused, err, tt.refused)
		}
	}
}

// TestRegradeAllRequest: a bad scope or run ID is refused before anything
// is looked up; an item out of range or planned without an ID is refused
// without a store.
func TestRegradeAllRequest(t *testing.T) {
	s := New(nil, nil, Options{})
	for _, req := range []RegradeAllRequest{
		{Assignment: "wc", Scope: "some"},
		{Assignment: "wc", ID: "x-1"},
		{Assignment: "wc", ID: "rg-a.b"},
	} {
		var fe *FieldError
		if _, err := s.RegradeAll(context.Background(), req); !errors.As(err, &fe) || fe.Problem != Invalid {
			t.Errorf("%+v: %v, want an invalid field", req, err)
		}
	}
	run := store.RegradeRun{ID: "rg-1", Items: []store.RegradeItem{{From: "s", Error: "regrade ID too long"}, {From: "t"}}}
	for _, i := range []int{0, 1, 2, -1} {
		if refused, err := s.StartRegrade(context.Background(), run, i); refused == "" || err != nil {
			t.Errorf("item %d: refused %q, %v", i, refused, err)
		}
	}
}
