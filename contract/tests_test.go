package contract

import (
	"errors"
	"testing"
	"time"
)

func TestValidateTests(t *testing.T) {
	due := time.Date(2027, 1, 15, 0, 0, 0, 0, time.UTC)
	base := func() Assignment {
		a := Assignment{Name: "tw", DueAt: &due, Tests: []TestSpec{{Name: "small", Points: 10, Input: "tests/small/input", Expected: "tests/small/expected"}}}
		a.Defaults()
		return a
	}
	tests := []struct {
		name  string
		edit  func(*Assignment)
		field string
	}{
		{"valid", func(*Assignment) {}, ""},
		{"bad name", func(a *Assignment) { a.Tests[0].Name = "Small!" }, "tests[0].name"},
		{"duplicate", func(a *Assignment) { a.Tests = append(a.Tests, a.Tests[0]) }, "tests[1].name"},
		{"visibility", func(a *Assignment) { a.Tests[0].Visibility = "secret" }, "tests[0].visibility"},
		{"after_due without due_at", func(a *Assignment) { a.Tests[0].Visibility = VisibilityAfterDue; a.DueAt = nil }, "tests[0].visibility"},
		{"input and dataset", func(a *Assignment) { a.Tests[0].Dataset = "big" }, "tests[0].input"},
		{"neither", func(a *Assignment) { a.Tests[0].Input = "" }, "tests[0].input"},
		{"escaping input", func(a *Assignment) { a.Tests[0].Input = "../x" }, "tests[0].input"},
		{"no expected", func(a *Assignment) { a.Tests[0].Expected = "" }, "tests[0].expected"},
		{"reducers", func(a *Assignment) { a.Tests[0].Reducers = 99 }, "tests[0].reducers"},
		{"counter name", func(a *Assignment) { a.Tests[0].Counters = []CounterCheck{{Counter: "combine", Op: ">"}} }, "tests[0].counters[0].counter"},
		{"counter op", func(a *Assignment) {
			a.Tests[0].Counters = []CounterCheck{{Counter: "COMBINE_INPUT_RECORDS", Op: "=~"}}
		}, "tests[0].counters[0].op"},
		{"image", func(a *Assignment) { a.Image = "Not An Image" }, "image"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := base()
			tc.edit(&a)
			err := a.Validate()
			var fe *FieldError
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field):
				t.Fatalf("error %v, want one on %s", err, tc.field)
			}
		})
	}
}

func TestTestsDefaultsAndRelease(t *testing.T) {
	due := time.Date(2027, 1, 15, 0, 0, 0, 0, time.UTC)
	a := Assignment{Name: "tw", DueAt: &due, TimeLimitSeconds: 30, Tests: []TestSpec{
		{Name: "a", Points: 25}, {Name: "b", Points: 15, Visibility: VisibilityHidden, TimeLimitSeconds: 10},
		{Name: "c", Points: 60, Visibility: VisibilityAfterDue}}}
	a.Defaults()
	if a.Points != 100 || a.Tests[0].Visibility != VisibilityVisible {
		t.Fatalf("points %g, visibility %q", a.Points, a.Tests[0].Visibility)
	}
	if got := a.TotalTimeLimit(); got != 70*time.Second {
		t.Errorf("total time limit %s, want 70s", got)
	}
	before, after := due.Add(-time.Second), due
	for _, tc := range []struct {
		test     TestSpec
		at       time.Time
		released bool
	}{
		{a.Tests[0], before, true}, {a.Tests[1], after, false}, {a.Tests[2], before, false}, {a.Tests[2], after, true},
	} {
		if got := tc.test.Released(a.DueAt, tc.at); got != tc.released {
			t.Errorf("%s at %s: released %v, want %v", tc.test.Name, tc.at, got, tc.released)
		}
	}
	legacy := Assignment{Name: "wc", Points: 100, Compare: CompareExact, InputFiles: []string{"assignments/wc/input/a.txt"}, ExpectedFiles: []string{"e"}}
	if ts := legacy.TestList(); len(ts) != 1 || ts[0].Name != "output" || ts[0].InputFiles[0].Name != "a.txt" || ts[0].Points != 100 {
		t.Errorf("single-test form: %+v", ts)
	}
}

func TestCounterCheckHolds(t *testing.T) {
	for _, tc := range []struct {
		op   string
		v    int64
		want bool
	}{{">", 1, true}, {">", 0, false}, {">=", 0, true}, {"==", 0, true}, {"!=", 0, false}, {"<", -1, true}, {"<=", 1, false}, {"~", 0, false}} {
		if got := (CounterCheck{Counter: "X", Op: tc.op, Value: 0}).Holds(tc.v); got != tc.want {
			t.Errorf("%d %s 0 = %v, want %v", tc.v, tc.op, got, tc.want)
		}
	}
}
