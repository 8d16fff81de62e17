//go:build stack

package test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/intake"
)

// The link between a remote execute host and the store, as issue 12 puts
// it: 150 ms round trip, 4 MB/s.
const (
	remoteRTT  = 150 * time.Millisecond
	remoteRate = 4e6 // bytes per second, each way
)

// remoteRound is one run of a backlog through one remote execute worker.
type remoteRound struct {
	ids        []string
	gaps       []float64       // seconds from a job's container ending to the next one's starting, on the one slot
	prestarts  []float64       // seconds from an execute step's start (read model) to its container's, jobs after the first
	prefetched map[string]bool // submissions whose execute step used prefetched files
	leftovers  []string        // prefetch entries on disk once everything was graded
	log        []string        // the worker's log lines about jobs and prefetching, for failures
}

// runRemote submits n correct wordcount submissions, waits until all are
// queued, then runs them on a fresh execute worker with one slot whose
// MongoDB connection goes through a shaped proxy (remoteRTT, remoteRate),
// with GRADEFLOW_PREFETCH=prefetch. The shared execute worker must be
// stopped (executeMu held) and the sanity worker running.
func runRemote(tb testing.TB, ctx context.Context, name string, n, prefetch int) remoteRound {
	tb.Helper()
	_, backend, err := proxiedURI(stk.mongoURI, "")
	if err != nil {
		tb.Fatal(err)
	}
	px, err := newShapedProxy(backend, remoteRTT, remoteRate)
	if err != nil {
		tb.Fatal(err)
	}
	defer px.close()
	uri, _, err := proxiedURI(stk.mongoURI, px.addr)
	if err != nil {
		tb.Fatal(err)
	}

	assignment := remoteAssignment(tb, ctx)
	files := readFiles(tb, filepath.Join(stk.root, exampleDir, "submissions/python-correct"))
	batch := randHex(3)
	r := remoteRound{prefetched: map[string]bool{}}
	var runs []interface {
		Get(context.Context, any) error
	}
	for i := range n {
		id := fmt.Sprintf("%s-%s-%d", name, batch, i)
		got, err := stk.intake().Submit(ctx, intake.Submission{ID: id, Assignment: assignment, Student: id, Files: files})
		if err != nil {
			tb.Fatal(err)
		}
		r.ids = append(r.ids, id)
		runs = append(runs, got.Run)
	}
	waitFor(tb, 3*time.Minute, "the backlog to queue", func() (bool, error) {
		for _, id := range r.ids {
			sub, err := stk.store.Submission(ctx, id)
			if err != nil || sub.Stage != contract.StageQueued {
				return false, err
			}
		}
		return true, nil
	})

	work := filepath.Join(stk.dir, "work-"+name+"-"+batch) // a host of its own: cold caches
	w, err := stk.startWorker(ctx, "worker-"+name, "execute",
		"MONGODB_URI="+uri, "GRADEFLOW_EXECUTE_SLOTS=1", "GRADEFLOW_WORKDIR="+work,
		"GRADEFLOW_PREFETCH="+strconv.Itoa(prefetch), "GRADEFLOW_LOG_LEVEL=debug")
	if err != nil {
		tb.Fatal(err)
	}
	defer w.Terminate(30 * time.Second)
	for i, run := range runs {
		var res contract.Result
		if err := run.Get(ctx, &res); err != nil || res.Outcome != contract.OutcomePassed {
			tb.Fatalf("%s: %v %s\n%s", r.ids[i], err, res.Outcome, w.Tail(3000))
		}
	}
	if prefetch > 0 {
		// A round or two after the queue emptied, nothing of it is left.
		time.Sleep(2 * time.Second)
		ents, _ := os.ReadDir(filepath.Join(work, "prefetch"))
		for _, e := range ents {
			if e.Name() != ".tmp" {
				r.leftovers = append(r.leftovers, e.Name())
			}
		}
	}

	events, err := logEvents(w.LogPath)
	if err != nil {
		tb.Fatal(err)
	}
	type job struct{ start, end time.Time }
	jobs := map[string]*job{}
	for _, e := range events {
		if e.ID == "" {
			if strings.HasPrefix(e.Msg, "prefetch") {
				r.log = append(r.log, fmt.Sprintf("%s %s %s %s", e.At.Format("15:04:05.000"), e.Msg, e.Err, strings.Join(e.Queued, ",")))
			}
			continue
		}
		j := jobs[e.ID]
		if j == nil {
			j = &job{}
			jobs[e.ID] = j
		}
		r.log = append(r.log, fmt.Sprintf("%s %s %s", e.At.Format("15:04:05.000"), e.Msg, e.ID))
		switch e.Msg {
		case "job starting":
			j.start = e.At
		case "job finished":
			j.end = e.At
		case "files prefetched":
			r.prefetched[e.ID] = true
		}
	}
	var order []*job
	for _, id := range r.ids {
		j := jobs[id]
		if j == nil || j.start.IsZero() || j.end.IsZero() {
			tb.Fatalf("%s: no job start and end in the worker's log", id)
		}
		order = append(order, j)
	}
	sort.Slice(order, func(a, b int) bool { return order[a].start.Before(order[b].start) })
	for i := 1; i < len(order); i++ {
		r.gaps = append(r.gaps, order[i].start.Sub(order[i-1].end).Seconds())
	}
	// The part of a gap after the execute step began: marking the
	// submission running, its files, its input.
	first := order[0]
	for _, id := range r.ids {
		sub, err := stk.store.Submission(ctx, id)
		if err != nil || sub.Times.ExecuteStarted == nil {
			tb.Fatalf("%s: %v %+v", id, err, sub.Times)
		}
		if j := jobs[id]; j != first {
			r.prestarts = append(r.prestarts, j.start.Sub(*sub.Times.ExecuteStarted).Seconds())
		}
	}
	return r
}

// remoteAssignment stores, once, the wordcount assignment under a name of
// its own with a time limit that a loaded machine cannot exceed: these
// tests measure the time between jobs, not the jobs.
func remoteAssignment(tb testing.TB, ctx context.Context) string {
	tb.Helper()
	const name = "prefetch-wordcount"
	remoteOnce.Do(func() {
		wc := filepath.Join(stk.root, exampleDir)
		cfg := loadAssignment(tb)
		cfg.Name, cfg.InputFiles, cfg.ExpectedFiles, cfg.TimeLimitSeconds = name, nil, nil, 300
		_, _, remoteErr = stk.intake().PutAssignment(ctx, intake.AssignmentUpload{Config: cfg,
			Input: readFiles(tb, filepath.Join(wc, "input")), Expected: readFiles(tb, filepath.Join(wc, "expected"))})
	})
	if remoteErr != nil {
		tb.Fatal(remoteErr)
	}
	return name
}

var (
	remoteOnce sync.Once
	remoteErr  error
)

// logEvent is one line of a program's JSON log.
type logEvent struct {
	At     time.Time
	Msg    string
	ID     string
	Err    string
	Queued []string
}

// logEvents reads a zap JSON log.
func logEvents(path string) ([]logEvent, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []logEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct {
			TS     float64  `json:"ts"`
			Msg    string   `json:"msg"`
			ID     string   `json:"submission_id"`
			Err    string   `json:"error"`
			Queued []string `json:"queued"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		sec, frac := math.Modf(line.TS)
		out = append(out, logEvent{At: time.Unix(int64(sec), int64(frac*1e9)), Msg: line.Msg, ID: line.ID, Err: line.Err, Queued: line.Queued})
	}
	return out, sc.Err()
}

// TestPrefetchOnRemoteWorker runs a backlog on an execute worker far from
// the store (its MongoDB connection through a proxy adding 150 ms of round
// trip at 4 MB/s) with GRADEFLOW_PREFETCH=8: while one job runs, the next
// ones' files are fetched, so every job after the first starts from
// prefetched files, and nothing prefetched is left on the host afterwards.
func TestPrefetchOnRemoteWorker(t *testing.T) {
	executeMu.Lock()
	defer executeMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	executeWorker.Terminate(30 * time.Second)
	defer restoreExecuteWorker(t)
	const n = 4
	r := runRemote(t, ctx, "prefetch", n, 8)
	used := 0
	for _, id := range r.ids {
		if r.prefetched[id] {
			used++
		}
	}
	// The first job may start before its files are in; every later one
	// was queued for a whole job's run.
	if used < n-1 {
		t.Errorf("%d of %d jobs used prefetched files, want at least %d: %v\n%s", used, n, n-1, r.prefetched, strings.Join(r.log, "\n"))
	}
	if len(r.leftovers) > 0 {
		t.Errorf("prefetched entries left after use: %v", r.leftovers)
	}
	t.Logf("%d of %d jobs prefetched; gaps between jobs %v s", used, n, r.gaps)
}

// BenchmarkP9RemotePrefetch measures, on an execute worker whose MongoDB
// link adds 150 ms of round trip at 4 MB/s, the gap between one job's
// container ending and the next one's starting on the same slot, with
// GRADEFLOW_PREFETCH=8 and with prefetching off, side by side in one run
// (rounds alternate on, off, off, on). Each round is a fresh backlog of
// GRADEFLOW_P9_JOBS correct wordcount submissions on a fresh worker. It
// also reports the part of the gap after the next execute step began
// (its start in the read model to its container's start): marking the
// submission running and fetching its files, which prefetching removes;
// the rest of the gap is the previous step's store writes and Temporal's
// hand-over, over the same link.
func BenchmarkP9RemotePrefetch(b *testing.B) {
	executeMu.Lock()
	defer executeMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	jobs, err := strconv.Atoi(envOr("GRADEFLOW_P9_JOBS", "8"))
	if err != nil || jobs < 2 {
		b.Fatalf("GRADEFLOW_P9_JOBS: %q, want at least 2", os.Getenv("GRADEFLOW_P9_JOBS"))
	}
	executeWorker.Terminate(30 * time.Second)
	defer restoreExecuteWorker(b)
	gaps, prestarts := map[int][]float64{}, map[int][]float64{}
	used := 0
	for _, k := range []int{8, 0, 0, 8} {
		r := runRemote(b, ctx, fmt.Sprintf("p9-k%d", k), jobs, k)
		gaps[k] = append(gaps[k], r.gaps...)
		prestarts[k] = append(prestarts[k], r.prestarts...)
		if k > 0 {
			used += len(r.prefetched)
		}
		b.Logf("K=%d: gaps %v s, step start to container %v s, %d of %d jobs prefetched", k, r.gaps, r.prestarts, len(r.prefetched), jobs)
	}
	b.ReportMetric(median(gaps[8]), "gap_p50_prefetch8_s")
	b.ReportMetric(median(gaps[0]), "gap_p50_off_s")
	b.ReportMetric(median(gaps[0])-median(gaps[8]), "gap_p50_saved_s")
	b.ReportMetric(median(prestarts[8]), "step_to_container_p50_prefetch8_s")
	b.ReportMetric(median(prestarts[0]), "step_to_container_p50_off_s")
	b.ReportMetric(float64(used)/float64(2*jobs), "prefetched_share")
}
