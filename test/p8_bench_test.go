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
//     py_upload_to_verdict also counts storing the files. Of that time,
//     py_stored_to_sanity_start is Temporal's dispatch of the sanity step
//     (until it marks the read model) and py_sanity_step the step itself
//     (marked to verdict recorded, the read model's own times).
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
	type sample struct{ pyStored, pyUpload, pyDispatch, pyStep, javaErr, javaCompile []float64 }
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
				l := verdictLatency(b, ctx, fmt.Sprintf("p8-%s-%d-%d-%s", ex, phase, i, randHex(2)), ex)
				s.pyUpload = append(s.pyUpload, l.upload)
				s.pyStored = append(s.pyStored, l.stored)
				s.pyDispatch = append(s.pyDispatch, l.dispatch)
				s.pyStep = append(s.pyStep, l.step)
			}
			l := verdictLatency(b, ctx, fmt.Sprintf("p8-jerr-%d-%d-%s", phase, i, randHex(2)), "java-compile-error")
			s.javaErr = append(s.javaErr, l.stored)
			s.javaCompile = append(s.javaCompile, javaCompileTime(b, ctx, fmt.Sprintf("p8-jok-%d-%d-%s", phase, i, randHex(2))))
		}
		w.Terminate(30 * time.Second)
	}
	for _, mode := range []string{"warm", "oneshot"} {
		s := got[mode]
		b.ReportMetric(median(s.pyStored), mode+"_py_stored_to_verdict_p50_ms")
		b.ReportMetric(percentile(s.pyStored, 95), mode+"_py_stored_to_verdict_p95_ms")
		b.ReportMetric(median(s.pyUpload), mode+"_py_upload_to_verdict_p50_ms")
		b.ReportMetric(median(s.pyDispatch), mode+"_py_stored_to_sanity_start_p50_ms")
		b.ReportMetric(median(s.pyStep), mode+"_py_sanity_step_p50_ms")
		b.ReportMetric(median(s.javaErr), mode+"_java_error_stored_to_verdict_p50_ms")
		b.ReportMetric(median(s.javaCompile), mode+"_java_compile_p50_ms")
		b.ReportMetric(percentile(s.javaCompile, 95), mode+"_java_compile_p95_ms")
	}
}

// latency is where a failed check's verdict time goes, in milliseconds.
type latency struct {
	upload   float64 // intake called → verdict readable
	stored   float64 // intake returned (files stored, workflow started) → verdict readable
	dispatch float64 // intake returned → the sanity step marked the read model
	step     float64 // the sanity step: marked → verdict recorded
}

// verdictLatency submits an example that fails its sanity check and
// measures how long its verdict takes to be in the read model.
func verdictLatency(b *testing.B, ctx context.Context, id, example string) latency {
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
			if sub.Outcome == contract.OutcomePassed || sub.Times.SanityStarted == nil || sub.Times.Completed == nil {
				b.Fatalf("%s: %s, times %+v", id, sub.Outcome, sub.Times)
			}
			return latency{upload: ms(t2.Sub(t0)), stored: ms(t2.Sub(t1)),
				dispatch: ms(sub.Times.SanityStarted.Sub(t1)), step: ms(sub.Times.Completed.Sub(*sub.Times.SanityStarted))}
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
