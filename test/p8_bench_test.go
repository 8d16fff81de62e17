//go:build stack

package test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/intake"
)

// BenchmarkP8SanityLatency: how long a sanity verdict takes to reach the
// read model, with warm checkers (the default) and with one container per
// check (GRADEFLOW_SANITY_WARM=off), side by side: phases alternate
// warm, one-shot, warm, one-shot, each with its own sanity-only worker
// (2 slots) while a grade-only worker records. Submissions go one at a
// time.
//
//   - py_stored_to_verdict: a Python syntax error or forbidden import, from
//     the intake having stored the files and started the workflow to the
//     verdict being readable in the read model (polled every 2 ms);
//     py_upload_to_verdict also counts storing the files.
//   - java_error_stored_to_verdict: the same for a Java compile error.
//   - java_compile: a correct Java submission's sanity step (sanity_started
//     to queued in the read model): compile, jar check, bytecode scan and
//     storing the jar. The workflow is canceled once queued.
func BenchmarkP8SanityLatency(b *testing.B) {
	ctx := context.Background()
	sanityWorker.Terminate(30 * time.Second)
	grade, err := stk.startWorker(ctx, "worker-p8-grade", "grade")
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		grade.Terminate(30 * time.Second)
		if sanityWorker, err = stk.startWorker(ctx, "worker-sanity-grade", "sanity,grade"); err != nil {
			b.Fatal(err)
		}
	}()
	type sample struct{ pyStored, pyUpload, javaErr, javaCompile []float64 }
	got := map[string]*sample{"warm": {}, "oneshot": {}}
	for phase, mode := range []string{"warm", "oneshot", "warm", "oneshot"} {
		warm := map[string]string{"warm": "on", "oneshot": "off"}[mode]
		w, err := stk.startWorker(ctx, fmt.Sprintf("worker-p8-%s", mode), "sanity", "GRADEFLOW_SANITY_WARM="+warm)
		if err != nil {
			b.Fatal(err)
		}
		if mode == "warm" {
			waitCheckersReady(b, w, 2)
		}
		s := got[mode]
		for i := 0; i < benchRounds*b.N; i++ {
			for _, ex := range []string{"python-syntax-error", "python-forbidden-import"} {
				up, stored := verdictLatency(b, ctx, fmt.Sprintf("p8-%s-%d-%d-%s", ex, phase, i, randHex(2)), ex)
				s.pyUpload = append(s.pyUpload, up)
				s.pyStored = append(s.pyStored, stored)
			}
			_, stored := verdictLatency(b, ctx, fmt.Sprintf("p8-jerr-%d-%d-%s", phase, i, randHex(2)), "java-compile-error")
			s.javaErr = append(s.javaErr, stored)
			s.javaCompile = append(s.javaCompile, javaCompileTime(b, ctx, fmt.Sprintf("p8-jok-%d-%d-%s", phase, i, randHex(2))))
		}
		w.Terminate(30 * time.Second)
	}
	for _, mode := range []string{"warm", "oneshot"} {
		s := got[mode]
		b.ReportMetric(median(s.pyStored), mode+"_py_stored_to_verdict_p50_ms")
		b.ReportMetric(percentile(s.pyStored, 95), mode+"_py_stored_to_verdict_p95_ms")
		b.ReportMetric(median(s.pyUpload), mode+"_py_upload_to_verdict_p50_ms")
		b.ReportMetric(median(s.javaErr), mode+"_java_error_stored_to_verdict_p50_ms")
		b.ReportMetric(median(s.javaCompile), mode+"_java_compile_p50_ms")
		b.ReportMetric(percentile(s.javaCompile, 95), mode+"_java_compile_p95_ms")
	}
}

// verdictLatency submits an example that fails its sanity check and
// returns the milliseconds from calling the intake, and from the intake
// returning (files stored, workflow started), to the graded verdict being
// in the read model.
func verdictLatency(b *testing.B, ctx context.Context, id, example string) (upload, stored float64) {
	b.Helper()
	files := readFiles(b, filepath.Join(stk.root, exampleDir, "submissions", example))
	t0 := time.Now()
	if _, err := stk.intake().Submit(ctx, intake.Submission{ID: id, Assignment: "wordcount", Student: "p8-" + randHex(2), Files: files}); err != nil {
		b.Fatal(err)
	}
	t1 := time.Now()
	deadline := t1.Add(2 * time.Minute)
	for {
		sub, err := stk.store.Submission(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		if sub.Status == contract.StatusGraded {
			t2 := time.Now()
			if sub.Outcome == contract.OutcomePassed {
				b.Fatalf("%s: passed its sanity check", id)
			}
			return ms(t2.Sub(t0)), ms(t2.Sub(t1))
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s: no verdict after 2 minutes (stage %s)", id, sub.Stage)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// javaCompileTime submits the correct Java example, waits until its sanity
// step has queued it, cancels it, and returns the step's milliseconds.
func javaCompileTime(b *testing.B, ctx context.Context, id string) float64 {
	b.Helper()
	files := readFiles(b, filepath.Join(stk.root, exampleDir, "submissions", "java-correct"))
	if _, err := stk.intake().Submit(ctx, intake.Submission{ID: id, Assignment: "wordcount", Student: "p8-" + randHex(2), Files: files}); err != nil {
		b.Fatal(err)
	}
	var took float64
	waitFor(b, 2*time.Minute, id+" queued", func() (bool, error) {
		sub, err := stk.store.Submission(ctx, id)
		if err != nil || sub.Times.Queued == nil || sub.Times.SanityStarted == nil {
			if err == nil && sub.Status == contract.StatusGraded {
				return false, fmt.Errorf("%s graded %s before it queued: %s", id, sub.Outcome, sub.Feedback)
			}
			return false, err
		}
		took = ms(sub.Times.Queued.Sub(*sub.Times.SanityStarted))
		return true, nil
	})
	if err := stk.temporal.CancelWorkflow(ctx, contract.WorkflowID(id), ""); err != nil {
		b.Fatal(err)
	}
	return took
}
