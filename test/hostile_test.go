//go:build stack

package test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gradeflow/gradeflow/contract"
)

// TestHostileSubmissions grades submissions that attack the sandbox, all at
// once and beside a correct neighbour, and checks that each is contained
// with a clear, scored outcome, the neighbour is unaffected, and nothing is
// left behind. Some attacks can end in more than one honest way (a fork bomb
// either breaks the job or keeps it alive until the time limit).
func TestHostileSubmissions(t *testing.T) {
	cases := []struct {
		name  string
		want  []contract.Outcome
		about string // what the feedback must mention
		leaks []string
	}{
		{"fork-bomb", []contract.Outcome{contract.OutcomeRuntimeError, contract.OutcomeTimeLimit}, "", nil},
		{"memory-bomb", []contract.Outcome{contract.OutcomeMemoryLimit}, "memory limit", nil},
		{"disk-fill", []contract.Outcome{contract.OutcomeRuntimeError, contract.OutcomeMemoryLimit}, "", nil},
		// asyncio imports socket, which the run-time guard refuses.
		{"network-egress", []contract.Outcome{contract.OutcomeRuntimeError}, "forbidden module 'socket'", nil},
		{"output-flood", []contract.Outcome{contract.OutcomeOutputLimit}, "output", nil},
		{"stderr-flood", []contract.Outcome{contract.OutcomeTimeLimit}, "time limit", nil},
		{"snoop", []contract.Outcome{contract.OutcomePassed}, "", nil},
		// Neither the input it echoed nor the expected lines it missed are
		// quoted: wordcount does not set show_expected.
		{"answer-oracle", []contract.Outcome{contract.OutcomeWrongAnswer}, "expected lines match",
			[]string{"harbour town wakes", "Notes From a Student", "accident\t1", "accident 1", "about 8"}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	batch := randHex(3)
	t.Run("group", func(t *testing.T) {
		t.Run("neighbour", func(t *testing.T) {
			t.Parallel()
			res := submit(t, ctx, "neighbour-"+batch, filepath.Join(stk.root, exampleDir, "submissions/python-correct"))
			if res.Outcome != contract.OutcomePassed || res.Score != 100 {
				t.Fatalf("a correct job beside hostile ones got %s %g:\n%s", res.Outcome, res.Score, res.Feedback)
			}
		})
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				id := "hostile-" + tc.name + "-" + batch
				res := submit(t, ctx, id, filepath.Join(stk.root, "test/testdata/hostile", tc.name))
				if res.Status != contract.StatusGraded || !slices.Contains(tc.want, res.Outcome) {
					t.Fatalf("got %s/%s, want graded/%v; feedback:\n%s", res.Status, res.Outcome, tc.want, res.Feedback)
				}
				if tc.about != "" && !strings.Contains(res.Feedback, tc.about) {
					t.Errorf("feedback %q does not mention %q", res.Feedback, tc.about)
				}
				for _, leak := range tc.leaks {
					if strings.Contains(res.Feedback, leak) {
						t.Errorf("feedback quotes %q:\n%s", leak, res.Feedback)
					}
				}
				if len(res.Feedback) > 8<<10 {
					t.Errorf("feedback is %d bytes; floods must be capped", len(res.Feedback))
				}
				sub, err := stk.store.Submission(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				for _, tr := range sub.Tests {
					if tc.leaks != nil && tr.Diff != "" {
						t.Errorf("test %s stores a diff excerpt the student can read: %q", tr.Name, tr.Diff)
					}
				}
				if sub.Attempts["execute"] != 1 {
					t.Errorf("execute ran %d times: a student's failure must not be retried", sub.Attempts["execute"])
				}
				waitFor(t, 30*time.Second, "no container left", func() (bool, error) {
					cs, err := stk.containers(ctx, id)
					return err == nil && len(cs) == 0, err
				})
			})
		}
	})
	// The host is unaffected: the engine still answers and runs jobs.
	if err := stk.docker.Ping(ctx); err != nil {
		t.Fatalf("docker engine after hostile jobs: %v", err)
	}
}
