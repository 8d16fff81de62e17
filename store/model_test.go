package store

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/gradeflow/gradeflow/contract"
)

// TestAssignmentDocument: every field of the contract's assignment
// survives the trip through its document.
func TestAssignmentDocument(t *testing.T) {
	a := contract.Assignment{
		Name: "wc", Title: "Word count", Runtimes: []string{contract.RuntimeStreaming}, TimeLimitSeconds: 30, MemoryMB: 512,
		CPUs: 0.5, ForbiddenModules: []string{"socket"}, Compare: contract.CompareExact, Points: 10, Mapper: "m.py",
		Reducer: "r.py", Combiner: "c.py", MainClass: "Main", WebhookURL: "https://h/x", InputFiles: []string{"i"},
		ExpectedFiles: []string{"e"}, UpdatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	if got := assignmentToDoc(a).assignment(); fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", a) {
		t.Errorf("round trip\n%+v\nwant\n%+v", got, a)
	}
}

func TestTestResults(t *testing.T) {
	if testResults(nil) != nil {
		t.Error("no tests became some")
	}
	got := testResults([]contract.TestResult{{Name: "output", Passed: true, Score: 1, MaxScore: 2, Expected: 3, Matched: 4, Got: 5, Diff: "d",
		Status: "passed", Visibility: "hidden", Seconds: 1.5, Counters: map[string]int64{"COMBINE_INPUT_RECORDS": 7}, Feedback: "f", LogTail: "l"}})
	want := TestResult{Name: "output", Passed: true, Score: 1, MaxScore: 2, Expected: 3, Matched: 4, Got: 5, Diff: "d",
		Status: "passed", Visibility: "hidden", Seconds: 1.5, Counters: map[string]int64{"COMBINE_INPUT_RECORDS": 7}, Feedback: "f", LogTail: "l"}
	if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Errorf("testResults = %+v", got)
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		xs   []float64
		want float64
		ok   bool
	}{
		{xs: nil, want: 0, ok: false},
		{xs: []float64{3}, want: 3, ok: true},
		{xs: []float64{5, 1, 3}, want: 3, ok: true},
		{xs: []float64{4, 1, 3, 2}, want: 2.5, ok: true},
	}
	for _, tt := range tests {
		if got, ok := Median(tt.xs); got != tt.want || ok != tt.ok {
			t.Errorf("Median(%v) = %g, %v; want %g, %v", tt.xs, got, ok, tt.want, tt.ok)
		}
	}
}

func TestForStudents(t *testing.T) {
	due := time.Date(2027, 1, 15, 0, 0, 0, 0, time.UTC)
	full := func(name, vis string) TestResult {
		return TestResult{Name: name, Visibility: vis, Passed: true, Score: 5, MaxScore: 5, Status: "passed", Expected: 3, Matched: 3, Got: 3,
			Diff: "- a", Seconds: 1, Counters: map[string]int64{"MAP_INPUT_RECORDS": 3}, Feedback: "all 3 output lines match", LogTail: "log"}
	}
	sub := Submission{Tests: []TestResult{full("v", "visible"), full("h", "hidden"), full("d", "after_due")}}
	tests := []struct {
		name     string
		at       time.Time
		withheld map[string]bool
	}{
		{"before the due date", due.Add(-time.Hour), map[string]bool{"h": true, "d": true}},
		{"after the due date", due, map[string]bool{"h": true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := sub.ForStudents(&due, tc.at)
			for i, tr := range got.Tests {
				want := sub.Tests[i]
				want.LogTail = ""
				if tc.withheld[tr.Name] {
					want = TestResult{Name: want.Name, Visibility: want.Visibility, Passed: true, Score: 5, MaxScore: 5, Status: "passed"}
				}
				if !reflect.DeepEqual(tr, want) {
					t.Errorf("%s: %+v, want %+v", tr.Name, tr, want)
				}
			}
			if sub.Tests[1].Feedback == "" {
				t.Error("ForStudents changed the original")
			}
		})
	}
}
