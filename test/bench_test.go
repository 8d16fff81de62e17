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
	"github.com/gradeflow/gradeflow/docker/sandbox"
	"github.com/gradeflow/gradeflow/intake"
	"github.com/gradeflow/gradeflow/store"
)

// The benchmarks measure the real stack. Run them with `make bench`; each
// reports medians over several rounds with b.ReportMetric, and a benchmark
// comparing two things measures both in the same run.

const benchRounds = 5

// median is the median of xs, 0 for none.
func median(xs []float64) float64 {
	m, _ := store.Median(xs)
	return m
}

// bareRun runs the job container of a streaming submission directly
// through the Docker SDK, with the same sandbox as the execute activity,
// and returns its wall time. It is the one container gradeflow starts per
// submission: the sanity check runs in a warm checker, not a container.
func bareRun(b *testing.B, ctx context.Context, subDir, inputDir string) time.Duration {
	b.Helper()
	job := bareJobSpec(loadAssignment(b), subDir, inputDir)
	start := time.Now()
	if res, err := stk.docker.Run(ctx, job); err != nil || res.ExitCode != 0 {
		b.Fatalf("bare job: %v exit %d %s", err, res.ExitCode, res.Stderr)
	}
	return time.Since(start)
}

// bareJobSpec is the streaming job container of a submission, with the
// sandbox and limits the execute activity gives it, for running it
// directly through the Docker SDK.
func bareJobSpec(cfg contract.Assignment, subDir, inputDir string) sandbox.Spec {
	return sandbox.Spec{
		Name:        "gradeflow-bench-" + randHex(4),
		Image:       stk.image,
		Cmd:         []string{"streaming", "--mapper", cfg.Mapper, "--reducer", cfg.Reducer},
		Mounts:      []sandbox.Mount{{Source: subDir, Target: "/job"}, {Source: inputDir, Target: "/input"}},
		MemoryBytes: int64(cfg.MemoryMB) << 20, NanoCPUs: int64(cfg.CPUs * 1e9), PidsLimit: 256,
		ScratchBytes: int64(cfg.MemoryMB) << 19, StdoutCap: 16 << 20, StderrCap: 64 << 10,
		Labels: map[string]string{sandbox.LabelManaged: "true", sandbox.LabelKind: "bench"},
	}
}

func loadAssignment(b testing.TB) contract.Assignment {
	a, err := stk.store.Assignment(context.Background(), "wordcount")
	if err != nil {
		b.Fatal(err)
	}
	a.Defaults()
	return a
}

// BenchmarkP1OrchestrationOverhead: the end-to-end latency of grading a
// correct Python submission, minus the bare time of its job container run
// directly through the Docker SDK: everything else, the sanity check
// included, is gradeflow's overhead. Rounds alternate the two, one at a
// time.
func BenchmarkP1OrchestrationOverhead(b *testing.B) {
	ctx := context.Background()
	subDir := filepath.Join(stk.root, exampleDir, "submissions/python-correct")
	inputDir := filepath.Join(stk.root, exampleDir, "input")
	// Warm up: the first job fills the input cache and the page cache.
	submit(b, ctx, "p1-warm-"+randHex(4), subDir)
	bareRun(b, ctx, subDir, inputDir)
	var e2e, bare, overhead, run []float64
	// Where the time goes, from the read model's stage times: the intake
	// with Temporal's dispatch to the sanity step, the sanity step, the
	// dispatch to the execute step, the execute step less its container,
	// and the store writes, compare and record after it.
	segments := map[string][]float64{}
	for i := 0; i < benchRounds*b.N; i++ {
		id := fmt.Sprintf("p1-%s-%d", randHex(3), i)
		start := time.Now()
		res := submit(b, ctx, id, subDir)
		total := time.Since(start)
		if res.Outcome != contract.OutcomePassed {
			b.Fatalf("%s: %s", id, res.Outcome)
		}
		bt := bareRun(b, ctx, subDir, inputDir)
		e2e = append(e2e, ms(total))
		bare = append(bare, ms(bt))
		overhead = append(overhead, ms(total-bt))
		run = append(run, res.RunSeconds*1000)
		sub, err := stk.store.Submission(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		t := sub.Times
		if t.Submitted == nil || t.SanityStarted == nil || t.Queued == nil || t.ExecuteStarted == nil || t.ExecuteEnded == nil || t.Completed == nil {
			b.Fatalf("%s: stage times missing: %+v", id, t)
		}
		for name, d := range map[string]time.Duration{
			"submit_to_sanity": t.SanityStarted.Sub(start),
			"sanity":           t.Queued.Sub(*t.SanityStarted),
			"to_execute":       t.ExecuteStarted.Sub(*t.Queued),
			"execute_less_job": t.ExecuteEnded.Sub(*t.ExecuteStarted) - time.Duration(res.RunSeconds*float64(time.Second)),
			"after_job":        t.Completed.Sub(*t.ExecuteEnded),
		} {
			segments[name] = append(segments[name], ms(d))
		}
	}
	b.ReportMetric(median(e2e), "e2e_ms")
	b.ReportMetric(median(bare), "bare_job_ms")
	b.ReportMetric(median(overhead), "overhead_ms")
	b.ReportMetric(median(run), "job_container_ms")
	for name, xs := range segments {
		b.ReportMetric(median(xs), "part_"+name+"_ms")
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// BenchmarkP2Throughput: 40 real Hadoop submissions through gradeflow with
// 4 execution slots, against the same job containers run directly through
// the Docker SDK, 4 at a time, in the same run (the baseline counts only
// the job containers). The ratio is gradeflow's share of the ideal that
// the engine and the 2 cores allow on this machine.
func BenchmarkP2Throughput(b *testing.B) {
	const jobs, slots = 40, 4
	ctx := context.Background()
	executeMu.Lock()
	defer executeMu.Unlock()
	// Serve execute with exactly `slots` slots for this benchmark.
	executeWorker.Terminate(30 * time.Second)
	w, err := stk.startWorker(ctx, "worker-execute-p2", "execute", fmt.Sprintf("GRADEFLOW_EXECUTE_SLOTS=%d", slots))
	if err != nil {
		b.Fatal(err)
	}
	defer restoreExecuteWorker(b)
	defer w.Terminate(30 * time.Second)
	subDir := filepath.Join(stk.root, exampleDir, "submissions/python-correct")
	inputDir := filepath.Join(stk.root, exampleDir, "input")
	cfg := loadAssignment(b)
	var gfRates, bareRates, ratios []float64
	for round := 0; round < b.N; round++ {
		// gradeflow
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, jobs)
		batch := randHex(3)
		for i := 0; i < jobs; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprintf("p2-%s-%d", batch, i)
				got, err := stk.intake().Submit(ctx, intake.Submission{
					ID: id, Assignment: "wordcount", Student: "bench", Files: readFiles(b, subDir)})
				if err == nil {
					var res contract.Result
					err = got.Run.Get(ctx, &res)
					if err == nil && res.Outcome != contract.OutcomePassed {
						err = fmt.Errorf("%s: %s", id, res.Outcome)
					}
				}
				errs <- err
			}()
		}
		wg.Wait()
		gf := time.Since(start)
		close(errs)
		for err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
		// bare: the same job containers, `slots` at a time
		start = time.Now()
		sem := make(chan struct{}, slots)
		for i := 0; i < jobs; i++ {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if res, err := stk.docker.Run(ctx, bareJobSpec(cfg, subDir, inputDir)); err != nil || res.ExitCode != 0 {
					b.Errorf("bare job: %v", err)
				}
			}()
		}
		wg.Wait()
		bare := time.Since(start)
		gfRates = append(gfRates, jobs/gf.Minutes())
		bareRates = append(bareRates, jobs/bare.Minutes())
		ratios = append(ratios, 100*bare.Seconds()/gf.Seconds())
	}
	b.ReportMetric(median(gfRates), "gradeflow_jobs/min")
	b.ReportMetric(median(bareRates), "bare_jobs/min")
	b.ReportMetric(median(ratios), "%_of_ideal")
}

// BenchmarkP4WorkerStartToFirstTask: with a backlog waiting on the execute
// queue and no execute worker, start a worker process and measure the time
// from starting it to its first job starting (the execute activity marking
// the submission running).
func BenchmarkP4WorkerStartToFirstTask(b *testing.B) {
	ctx := context.Background()
	executeMu.Lock()
	defer executeMu.Unlock()
	executeWorker.Terminate(30 * time.Second)
	defer restoreExecuteWorker(b)
	subDir := filepath.Join(stk.root, exampleDir, "submissions/python-correct")
	var firsts []float64
	for round := 0; round < benchRounds*b.N; round++ {
		batch := randHex(3)
		var runs []interface {
			Get(context.Context, any) error
		}
		for i := 0; i < 3; i++ {
			got, err := stk.intake().Submit(ctx, intake.Submission{
				ID: fmt.Sprintf("p4-%s-%d", batch, i), Assignment: "wordcount", Student: "bench", Files: readFiles(b, subDir)})
			if err != nil {
				b.Fatal(err)
			}
			runs = append(runs, got.Run)
		}
		// Wait until the backlog is queued for execution.
		waitFor(b, time.Minute, "backlog queued", func() (bool, error) {
			for i := 0; i < 3; i++ {
				sub, err := stk.store.Submission(ctx, fmt.Sprintf("p4-%s-%d", batch, i))
				if err != nil || sub.Stage != contract.StageQueued {
					return false, err
				}
			}
			return true, nil
		})
		started := time.Now()
		w, err := stk.Start("worker-p4", filepath.Join(stk.bin, "gradeflow-worker"), append(stk.env(), "GRADEFLOW_QUEUES=execute"))
		if err != nil {
			b.Fatal(err)
		}
		var first time.Time
		waitFor(b, time.Minute, "first task", func() (bool, error) {
			for i := 0; i < 3; i++ {
				sub, err := stk.store.Submission(ctx, fmt.Sprintf("p4-%s-%d", batch, i))
				if err == nil && sub.Times.ExecuteStarted != nil {
					first = *sub.Times.ExecuteStarted
					return true, nil
				}
			}
			return false, nil
		})
		firsts = append(firsts, ms(first.Sub(started)))
		for _, r := range runs {
			var res contract.Result
			if err := r.Get(ctx, &res); err != nil {
				b.Fatal(err)
			}
		}
		w.Terminate(30 * time.Second)
	}
	b.ReportMetric(median(firsts), "start_to_first_task_ms")
}
