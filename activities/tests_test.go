package activities

import (
	"testing"

	"github.com/gradeflow/gradeflow/contract"
)

func TestParseCounters(t *testing.T) {
	log := "Running job: job_local1\n map 100% reduce 100%\n" +
		"Counters: 30\n\tFile System Counters\n\t\tFILE: Number of bytes read=578\n" +
		"\tMap-Reduce Framework\n\t\tMap input records=23\n\t\tCombine input records=246\n\t\tShuffled Maps =3\n" +
		"\tShuffle Errors\n\t\tBAD_ID=0\n"
	forged := "Counters: 1\n\tMap-Reduce Framework\n\t\tCombine input records=999\n" + log
	tests := []struct {
		name string
		log  string
		want map[string]int64
	}{
		{"none", "job failed\n", nil},
		{"framework group only", log, map[string]int64{"MAP_INPUT_RECORDS": 23, "COMBINE_INPUT_RECORDS": 246, "SHUFFLED_MAPS": 3}},
		{"the last block wins", forged, map[string]int64{"MAP_INPUT_RECORDS": 23, "COMBINE_INPUT_RECORDS": 246, "SHUFFLED_MAPS": 3}},
		{"stops at the block's end", log + "Counters: x\nlater line\n", map[string]int64{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := parseCounters([]byte(tc.log))
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %d, want %d", k, got[k], v)
				}
			}
		})
	}
}

func TestGradeTests(t *testing.T) {
	run := func(name, status string, score, maxScore float64) contract.TestRun {
		return contract.TestRun{Result: contract.TestResult{Name: name, Status: status, Score: score, MaxScore: maxScore, Passed: status == contract.TestPassed}}
	}
	tests := []struct {
		name    string
		runs    []contract.TestRun
		outcome contract.Outcome
		score   float64
	}{
		{"all pass", []contract.TestRun{run("a", contract.TestPassed, 50, 50), run("b", contract.TestPassed, 50, 50)}, contract.OutcomePassed, 100},
		{"partial after a timeout", []contract.TestRun{run("a", contract.TestPassed, 25, 25), run("b", contract.TestPassed, 25, 25),
			run("c", contract.TestTimeout, 0, 20), run("d", contract.TestPassed, 30, 30)}, contract.OutcomeTimeLimit, 80},
		{"first failure names the outcome", []contract.TestRun{run("a", contract.TestFailed, 10.333, 20), run("b", contract.TestMemory, 0, 20)}, contract.OutcomeWrongAnswer, 10.33},
		{"not run", []contract.TestRun{run("a", contract.TestCrashed, 0, 20), run("b", contract.TestNotRun, 0, 20)}, contract.OutcomeRuntimeError, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := gradeTests(contract.Execution{Tests: tc.runs})
			if g.Outcome != tc.outcome || g.Score != tc.score || len(g.Tests) != len(tc.runs) {
				t.Errorf("got %s %g (%d tests), want %s %g", g.Outcome, g.Score, len(g.Tests), tc.outcome, tc.score)
			}
		})
	}
}

func TestFinishTestsMarksTheRest(t *testing.T) {
	tests := []contract.TestSpec{{Name: "a", Points: 10}, {Name: "b", Points: 10}, {Name: "c", Points: 10}}
	done := []contract.TestRun{{Result: contract.TestResult{Name: "a", Status: contract.TestPassed, Score: 10, MaxScore: 10}}}
	exec := finishTests(tests, done, 1, contract.GraderVersion{}, contract.TestResult{Status: contract.TestMemory})
	want := []string{contract.TestPassed, contract.TestMemory, contract.TestNotRun}
	for i, r := range exec.Tests {
		if r.Result.Name != tests[i].Name || r.Result.Status != want[i] || r.Result.MaxScore != 10 {
			t.Errorf("test %d: %+v, want %s %s", i, r.Result, tests[i].Name, want[i])
		}
	}
}
