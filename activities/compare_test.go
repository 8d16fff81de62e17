package activities

import (
	"reflect"
	"strings"
	"testing"

	"github.com/gradeflow/gradeflow/contract"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"sorts and trims", "b\t2\n a\t1 \n", []string{"a 1", "b 2"}},
		{"collapses whitespace runs", "a  \t 1\n", []string{"a 1"}},
		{"drops blank lines", "\n\na 1\n   \n", []string{"a 1"}},
		{"keeps duplicates", "a 1\na 1\n", []string{"a 1", "a 1"}},
		{"no trailing newline", "a 1", []string{"a 1"}},
		{"CRLF", "a 1\r\nb 2\r\n", []string{"a 1", "b 2"}},
		{"empty", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Normalize([]byte(tc.in)); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Normalize(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestScore(t *testing.T) {
	expected := "apple\t2\nbanana\t1\ncherry\t5\nplum\t1\n"
	tests := []struct {
		name        string
		got         string
		mode        string
		wantOutcome contract.Outcome
		wantScore   float64
		wantMatched int
		wantDiff    []string // substrings of the diff excerpt
	}{
		{"identical", expected, contract.CompareSortedLines, contract.OutcomePassed, 100, 4, nil},
		{"order and spacing ignored", "plum 1\ncherry  5\nbanana\t1\napple\t2", contract.CompareSortedLines, contract.OutcomePassed, 100, 4, nil},
		{"one wrong count", "apple\t2\nbanana\t1\ncherry\t4\nplum\t1\n", contract.CompareSortedLines, contract.OutcomeWrongAnswer, 75, 3,
			[]string{"- cherry 5", "+ cherry 4"}},
		{"extra lines cost too", expected + "zebra\t1\nzoo\t1\nzulu\t1\nzz\t1\n", contract.CompareSortedLines, contract.OutcomeWrongAnswer, 50, 4,
			[]string{"+ zebra 1"}},
		{"missing lines", "apple\t2\n", contract.CompareSortedLines, contract.OutcomeWrongAnswer, 25, 1, []string{"- banana 1", "- plum 1"}},
		{"empty output", "", contract.CompareSortedLines, contract.OutcomeWrongAnswer, 0, 0, []string{"- apple 2"}},
		{"exact mode is all or nothing", "apple\t2\nbanana\t1\ncherry\t5\n", contract.CompareExact, contract.OutcomeWrongAnswer, 0, 3, []string{"- plum 1"}},
		{"exact mode full marks", expected, contract.CompareExact, contract.OutcomePassed, 100, 4, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := Score([]byte(expected), []byte(tc.got), tc.mode, 100, true)
			if g.Outcome != tc.wantOutcome || g.Score != tc.wantScore || g.MaxScore != 100 {
				t.Fatalf("got %s %g/%g, want %s %g/100", g.Outcome, g.Score, g.MaxScore, tc.wantOutcome, tc.wantScore)
			}
			if len(g.Tests) != 1 || g.Tests[0].Matched != tc.wantMatched || g.Tests[0].Expected != 4 {
				t.Fatalf("tests %+v, want matched %d of 4", g.Tests, tc.wantMatched)
			}
			for _, d := range tc.wantDiff {
				if !strings.Contains(g.Tests[0].Diff, d) || !strings.Contains(g.Feedback, d) {
					t.Errorf("diff %q / feedback %q lacks %q", g.Tests[0].Diff, g.Feedback, d)
				}
			}
		})
	}
}

func TestScoreDiffExcerptIsCapped(t *testing.T) {
	var got strings.Builder
	for i := 0; i < 500; i++ {
		got.WriteString(strings.Repeat("x", i%7+1) + "\t1\n")
	}
	g := Score([]byte("a\t1\n"), []byte(got.String()), contract.CompareSortedLines, 10, true)
	if lines := strings.Count(g.Tests[0].Diff, "\n") + 1; lines > 2*diffLimit+2 {
		t.Fatalf("diff has %d lines, want at most %d", lines, 2*diffLimit+2)
	}
	if !strings.Contains(g.Tests[0].Diff, "more") {
		t.Fatalf("diff does not say lines were left out: %q", g.Tests[0].Diff)
	}
}

// TestScoreHidesLinesByDefault: without show_expected, feedback has the
// counts and no line of either the expected output or the job's.
func TestScoreHidesLinesByDefault(t *testing.T) {
	expected := "apple\t2\nbanana\t1\ncherry\t5\n"
	got := "apple\t2\ncherry\t4\nsecret-input-line\n"
	g := Score([]byte(expected), []byte(got), contract.CompareSortedLines, 100, false)
	if g.Outcome != contract.OutcomeWrongAnswer || g.Tests[0].Matched != 1 {
		t.Fatalf("got %s, matched %d", g.Outcome, g.Tests[0].Matched)
	}
	for _, leak := range []string{"banana", "cherry", "secret-input-line"} {
		if strings.Contains(g.Feedback, leak) || strings.Contains(g.Tests[0].Diff, leak) {
			t.Errorf("feedback %q / diff %q quotes %q", g.Feedback, g.Tests[0].Diff, leak)
		}
	}
	if !strings.Contains(g.Feedback, "1 of 3 expected lines match; 2 missing, 2 unexpected") {
		t.Errorf("feedback %q lacks the counts", g.Feedback)
	}
}
