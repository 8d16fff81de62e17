//go:build stack

package test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/intake"
)

// BenchmarkP12RegradeLane measures live submissions' wait for an execution
// slot (queued to job start, from the read model) with and without a
// regrade-all running, side by side in one run. The regrade-all regrades
// every student's latest submission of an assignment of its own in the
// regrade lane (Temporal priority 4, live is 2): live work should wait for
// at most the job that holds a slot when it arrives, not for the regrades
// queued before it. GRADEFLOW_P12_REGRADES sets the regrade's size.
func BenchmarkP12RegradeLane(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	var regrades int
	if _, err := fmt.Sscan(envOr("GRADEFLOW_P12_REGRADES", "120"), &regrades); err != nil || regrades < 1 {
		b.Fatalf("GRADEFLOW_P12_REGRADES: %v", err)
	}
	in := stk.intake()
	wc := filepath.Join(stk.root, exampleDir)
	base := loadAssignment(b)
	name := "bench-regrade-" + randHex(3)
	cfg := base
	cfg.Name, cfg.InputFiles, cfg.ExpectedFiles = name, nil, nil
	if _, _, err := in.PutAssignment(ctx, intake.AssignmentUpload{Config: cfg,
		Input: readFiles(b, filepath.Join(wc, "input")), Expected: readFiles(b, filepath.Join(wc, "expected"))}); err != nil {
		b.Fatal(err)
	}
	files := readFiles(b, filepath.Join(wc, "submissions/python-correct"))
	submitAll := func(prefix string, n int, every time.Duration) []string {
		ids := make([]string, n)
		var wg sync.WaitGroup
		for i := range n {
			ids[i] = fmt.Sprintf("%s-%d-%s", prefix, i, randHex(3))
			wg.Go(func() {
				got, err := in.Submit(ctx, intake.Submission{ID: ids[i], Assignment: name, Student: fmt.Sprintf("%s-s%d", prefix, i), Files: files})
				if err != nil {
					b.Error(err)
					return
				}
				var res contract.Result
				if err := got.Run.Get(ctx, &res); err != nil || res.Outcome != contract.OutcomePassed {
					b.Errorf("%s: %v %s", ids[i], err, res.Outcome)
				}
			})
			time.Sleep(every)
		}
		wg.Wait()
		return ids
	}
	waits := func(ids []string) []float64 {
		var out []float64
		for _, id := range ids {
			s, err := stk.store.Submission(ctx, id)
			if err != nil || s.Times.Queued == nil || s.Times.ExecuteStarted == nil {
				b.Fatalf("%s: %v %+v", id, err, s.Times)
			}
			out = append(out, s.Times.ExecuteStarted.Sub(*s.Times.Queued).Seconds())
		}
		return out
	}
	// The history a regrade-all regrades: one graded submission per student.
	submitAll("p12-history", regrades, 0)
	if b.Failed() {
		return
	}
	// Live arrivals at about half the slots' capacity.
	const live, every = 16, 1500 * time.Millisecond
	alone := waits(submitAll("p12-alone", live, every))

	start := time.Now()
	run, err := in.RegradeAll(ctx, intake.RegradeAllRequest{Assignment: name, Scope: intake.ScopeLatest})
	if err != nil {
		b.Fatal(err)
	}
	// The request plans the run and starts its workflow: the regrades
	// themselves are started by the workflow, after this returns.
	started := time.Since(start)
	during := waits(submitAll("p12-during", live, every))
	rep, err := in.RegradeReport(ctx, run.ID)
	if err != nil {
		b.Fatal(err)
	}
	pendingAfterLive := len(rep.Pending)
	waitFor(b, 30*time.Minute, "the regrade-all to finish", func() (bool, error) {
		rep, err = in.RegradeReport(ctx, run.ID)
		return err == nil && len(rep.Pending) == 0 && rep.Started == rep.Total, err
	})
	total := time.Since(start)
	// Every student's latest: the history and the first live round.
	if rep.Failed != 0 || len(rep.Changed) != 0 || rep.Unchanged != regrades+live || rep.Total != regrades+live {
		b.Errorf("regrade report: %d failed, %d changed, %d unchanged of %d, want %d unchanged", rep.Failed, len(rep.Changed), rep.Unchanged, rep.Total, regrades+live)
	}
	b.ReportMetric(median(alone), "live_wait_p50_alone_s")
	b.ReportMetric(median(during), "live_wait_p50_during_regrade_s")
	b.ReportMetric(percentile(during, 95), "live_wait_p95_during_regrade_s")
	b.ReportMetric(float64(rep.Total), "regrades")
	b.ReportMetric(started.Seconds(), "regrade_start_s")
	b.ReportMetric(float64(pendingAfterLive), "regrades_pending_after_live")
	b.ReportMetric(total.Seconds(), "regrade_all_s")
}
