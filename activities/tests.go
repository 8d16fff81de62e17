package activities

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/gradeflow/gradeflow/activities/datacache"
	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/docker/sandbox"
	"github.com/gradeflow/gradeflow/store"
)

// testProgress is the execute step's heartbeat detail in the tests form:
// the tests that have finished, with their results. A retried attempt
// reads it back and runs only the others.
type testProgress struct {
	Done []contract.TestRun
}

// priorProgress is the tests that earlier attempts of this execute step
// finished, read back from their heartbeat.
func priorProgress(ctx context.Context) testProgress {
	var prog testProgress
	if activity.HasHeartbeatDetails(ctx) {
		if err := activity.GetHeartbeatDetails(ctx, &prog); err != nil {
			return testProgress{} // an older attempt's detail (a phase string): start over
		}
	}
	return prog
}

// containerSlack is the time a job container gets beyond its tests' limits:
// the runner's start, each test's JVM start and the result tar.
const containerSlack = 30 * time.Second

// executeTests runs the tests of an assignment of the tests form in one
// container: one Hadoop job per test, in order. Each test is scored as soon
// as its results arrive, recorded in the read model, and put in the
// heartbeat, so that a later attempt (after a worker died) skips it. A test
// that fails, times out or runs out of memory scores what it scores and the
// next one still runs; if the container itself dies, the tests that
// finished keep their scores and the others score 0 as not run.
func (a *Activities) executeTests(ctx context.Context, plan contract.Plan, prog testProgress, grader contract.GraderVersion, dir, jobDir string, base []string) (contract.Execution, error) {
	info := activity.GetInfo(ctx)
	log := activity.GetLogger(ctx)
	cfg := plan.Config
	tests := cfg.TestList()

	done := map[string]bool{}
	for _, r := range prog.Done {
		done[r.Result.Name] = true
	}
	var todo []contract.TestSpec
	for _, t := range tests {
		if !done[t.Name] {
			todo = append(todo, t)
		}
	}
	if len(todo) == 0 {
		grader.ImageID = a.imageID(ctx, grader.Image)
		return finishTests(tests, prog.Done, 0, grader), nil
	}
	if len(prog.Done) > 0 {
		log.Info("resuming after earlier attempts", "tests_done", len(prog.Done), "tests_left", len(todo))
	}

	// Every test's input, from the host cache by content hash, linked into
	// one directory per test.
	stopFetch := a.keepAlive(ctx, prog)
	inputRoot := filepath.Join(dir, "input")
	var handles []*datacache.Handle
	defer func() {
		for _, h := range handles {
			h.Release()
		}
	}()
	limit := containerSlack
	cmd := append([]string(nil), base...)
	for _, t := range todo {
		for _, f := range t.InputFiles {
			if !contract.ValidRelPath(f.Name) {
				stopFetch()
				return contract.Execution{}, contract.NewConfigFailure("test %s: input file name %q is not a relative path", t.Name, f.Name)
			}
			h, err := a.blob(ctx, f, a.Config.MaxInput)
			if err != nil {
				stopFetch()
				return contract.Execution{}, err
			}
			handles = append(handles, h)
			if err := linkInto(filepath.Join(h.Path, "data"), filepath.Join(inputRoot, t.Name, filepath.FromSlash(f.Name))); err != nil {
				stopFetch()
				return contract.Execution{}, err
			}
		}
		if len(t.InputFiles) == 0 { // an empty input is still a directory
			if err := os.MkdirAll(filepath.Join(inputRoot, t.Name), 0o755); err != nil {
				stopFetch()
				return contract.Execution{}, fmt.Errorf("input dir: %w", err)
			}
		}
		secs := int(cfg.TestTimeLimit(t) / time.Second)
		limit += cfg.TestTimeLimit(t) + 3*time.Second
		cmd = append(cmd, "--test", fmt.Sprintf("%s:%d:%d", t.Name, max(t.Reducers, 0), secs))
	}
	stopFetch()

	live := &liveTests{a: a, ctx: ctx, plan: plan, tests: tests, done: prog.Done, seen: done, notify: make(chan struct{}, 1)}
	spec := a.spec(ctx, plan.Request, "execute", cmd, limits{memoryMB: cfg.MemoryMB, cpus: cfg.CPUs})
	spec.Image = grader.Image
	spec.Mounts = []sandbox.Mount{{Source: jobDir, Target: "/job"}, {Source: inputRoot, Target: "/input"}}
	spec.TimeLimit = limit
	spec.Env = append(spec.Env, "GRADEFLOW_TIMEOUT_SECONDS="+strconv.Itoa(int((limit+30*time.Second)/time.Second)))
	spec.StdoutTee = live
	spec.Tick = func(time.Duration) { a.beat(ctx, live.progress()) }
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() { live.loop(stop) })
	res, runErr := a.Sandbox.Run(ctx, spec)
	grader.ImageID = res.ImageID
	close(stop)
	wg.Wait()
	live.scan() // whatever arrived last
	if runErr != nil {
		a.beat(ctx, live.progress()) // the next attempt starts from here
		return contract.Execution{}, runErr
	}
	if err := live.failed(); err != nil {
		a.beat(ctx, live.progress())
		return contract.Execution{}, err
	}
	if err := a.Submissions.MarkExecuteEnded(ctx, plan.SubmissionID, time.Now()); err != nil {
		return contract.Execution{}, err
	}
	log.Info("tests finished", "exit_code", res.ExitCode, "elapsed", res.Elapsed, "oom_killed", res.OOMKilled,
		"timed_out", res.TimedOut, "tests_run", len(live.progress().Done)-len(prog.Done), "attempt", info.Attempt)
	finished := live.progress().Done
	end := containerEnd(res, limit, cfg.MemoryMB, a.Config.MaxOutput)
	end.LogTail = tail(res.Stderr, 4096) // staff only
	if len(finished) < len(tests) && !res.TimedOut && !res.OOMKilled {
		log.Warn("job container ended before its last test", "exit_code", res.ExitCode, "stderr_tail", tail(res.Stderr, 1024))
	}
	if msg, ok := live.refusal(); ok { // the runner refused the job before its first test
		end = contract.TestResult{Status: contract.TestCrashed, Feedback: msg}
	}
	return finishTests(tests, finished, res.Elapsed.Seconds(), grader, end), nil
}

// containerEnd says why the container ended before its last test did, for
// the first test that has no result.
func containerEnd(res sandbox.Result, limit time.Duration, memoryMB int, maxOutput int64) contract.TestResult {
	switch {
	case res.TimedOut:
		return contract.TestResult{Status: contract.TestTimeout, Feedback: fmt.Sprintf("the job container ran out of its time (%s) during this test and was stopped", limit)}
	case res.OOMKilled:
		return contract.TestResult{Status: contract.TestMemory, Feedback: fmt.Sprintf("the job used more than its memory limit of %d MiB during this test and was stopped", memoryMB)}
	case res.StdoutTruncated:
		return contract.TestResult{Status: contract.TestOutput, Feedback: fmt.Sprintf("the job's output exceeded the limit of %d bytes", maxOutput)}
	}
	return contract.TestResult{Status: contract.TestCrashed, Feedback: fmt.Sprintf("the job ended abnormally during this test (exit code %d)", res.ExitCode)}
}

// finishTests puts the results in the assignment's order; a test without
// one gets end (the first) or not_run.
func finishTests(tests []contract.TestSpec, done []contract.TestRun, seconds float64, grader contract.GraderVersion, end ...contract.TestResult) contract.Execution {
	by := map[string]contract.TestRun{}
	for _, r := range done {
		by[r.Result.Name] = r
	}
	exec := contract.Execution{RunSeconds: seconds, Grader: grader}
	first := true
	for _, t := range tests {
		if r, ok := by[t.Name]; ok {
			exec.Tests = append(exec.Tests, r)
			continue
		}
		r := contract.TestResult{Status: contract.TestNotRun, Feedback: "not run: the job ended before this test"}
		if first && len(end) > 0 {
			r = end[0]
		}
		first = false
		r.Name, r.MaxScore, r.Visibility = t.Name, t.Points, t.Visibility
		exec.Tests = append(exec.Tests, contract.TestRun{Result: r})
	}
	return exec
}

// grader is the version of what grades with cfg: its revision and image.
// The image's digest is the job container's (sandbox.Result.ImageID), set
// once it ran.
func (a *Activities) grader(cfg contract.Assignment) (contract.GraderVersion, error) {
	image := a.Config.Image
	if cfg.Image != "" {
		if !a.allowedImage(cfg.Image) {
			return contract.GraderVersion{}, contract.NewConfigFailure("assignment %s names runtime image %s, which this worker does not allow (GRADEFLOW_RUNTIME_IMAGES)", cfg.Name, cfg.Image)
		}
		image = cfg.Image
	}
	return contract.GraderVersion{AssignmentRevision: cfg.UpdatedAt.UnixMilli(), Image: image}, nil
}

// imageID is the digest of a local image, for a grading whose tests all
// ran in an earlier attempt's container (empty when the sandbox cannot
// tell).
func (a *Activities) imageID(ctx context.Context, image string) string {
	if id, ok := a.Sandbox.(interface {
		ImageID(context.Context, string) (string, error)
	}); ok {
		if d, err := id.ImageID(ctx, image); err == nil {
			return d
		}
	}
	return ""
}

func (a *Activities) allowedImage(image string) bool {
	for _, im := range a.Config.RuntimeImages {
		if im == image {
			return true
		}
	}
	return image == a.Config.Image
}

// beat records a heartbeat with details, and remembers them as the
// attempt's latest (withLastBeat).
func (a *Activities) beat(ctx context.Context, details any) {
	if b, ok := ctx.Value(lastBeatKey{}).(*lastBeat); ok {
		b.put(details)
	}
	if a.recordHeartbeat != nil {
		a.recordHeartbeat(ctx, details)
		return
	}
	activity.RecordHeartbeat(ctx, details)
}

// blob returns a host-cache handle on a stored file, fetched once per host
// by content hash (by name and assignment version for files stored before
// blobs). Its content is the file "data" in the handle's directory.
func (a *Activities) blob(ctx context.Context, f contract.FileRef, max int64) (*datacache.Handle, error) {
	c, err := a.inputs.open(a)
	if err != nil {
		return nil, err
	}
	if !sha256Hex.MatchString(f.SHA256) {
		return nil, contract.NewConfigFailure("file %s is not stored by content", f.Blob)
	}
	key := "blob-" + f.SHA256
	return c.Get(ctx, key, func(ctx context.Context, dir string) error {
		path := filepath.Join(dir, "data")
		if _, err := a.Files.FetchBlob(ctx, f.Blob, path, max); err != nil {
			return err
		}
		// The cache is by content: what is cached must be that content. A
		// mismatch is an infrastructure error: the fetch is retried.
		got, err := sumFile(path)
		if err != nil {
			return err
		}
		if got.sha != f.SHA256 {
			return fmt.Errorf("fetched file has SHA-256 %s, want %s", got.sha, f.SHA256)
		}
		return nil
	})
}

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// linkInto makes dst a hard link of src (the cached file; a copy if the
// two are on different file systems). The job's mount is read-only.
func linkInto(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("input dir: %w", err)
	}
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	data, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("input %s: %w", dst, err)
	}
	defer data.Close()
	out, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("input %s: %w", dst, err)
	}
	if _, err := bufio.NewReader(data).WriteTo(out); err != nil {
		out.Close()
		return fmt.Errorf("input %s: %w", dst, err)
	}
	return out.Close()
}

// liveTests reads the runner's per-test archives as they arrive on the
// container's stdout, and scores, records and remembers each finished test.
type liveTests struct {
	a      *Activities
	ctx    context.Context
	plan   contract.Plan
	tests  []contract.TestSpec
	notify chan struct{}

	mu   sync.Mutex
	buf  []byte
	done []contract.TestRun
	seen map[string]bool
	err  error // a store failure while recording a test: the attempt fails
}

// Write is the container's stdout, as kept by the sandbox.
func (l *liveTests) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.buf = append(l.buf, p...)
	l.mu.Unlock()
	select {
	case l.notify <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (l *liveTests) loop(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-l.notify:
			l.scan()
		}
	}
}

func (l *liveTests) progress() testProgress {
	l.mu.Lock()
	defer l.mu.Unlock()
	return testProgress{Done: append([]contract.TestRun(nil), l.done...)}
}

func (l *liveTests) failed() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// refusal is the runner's message when it refused the job as a whole
// (a mapper that is not there, say): a failed result.json of its own.
func (l *liveTests) refusal() (string, bool) {
	l.mu.Lock()
	buf := l.buf[:len(l.buf):len(l.buf)]
	l.mu.Unlock()
	files, _, err := sandbox.ParseTarStream(buf, sandbox.TarLimits{MaxEntries: (MaxOutputFiles + 8) * max(len(l.tests), 1),
		MaxEntryBytes: l.a.Config.MaxOutput, MaxTotalBytes: l.a.Config.MaxOutput})
	if err != nil {
		return "", false
	}
	for _, f := range files {
		var res runResult
		if f.Name == "result.json" && len(f.Data) <= maxResultJSON && json.Unmarshal(f.Data, &res) == nil && !res.OK {
			return runtimeFeedback(&res, res.ExitCode), true
		}
	}
	return "", false
}

// scan scores every test whose result.json has arrived and that is not
// scored yet. The archives are read from the start each time (headers
// only: cheap), within the same limits as a whole result.
func (l *liveTests) scan() {
	l.mu.Lock()
	buf := l.buf[:len(l.buf):len(l.buf)]
	l.mu.Unlock()
	files, _, err := sandbox.ParseTarStream(buf, sandbox.TarLimits{
		MaxEntries: (MaxOutputFiles + 8) * max(len(l.tests), 1), MaxEntryBytes: l.a.Config.MaxOutput, MaxTotalBytes: l.a.Config.MaxOutput})
	if err != nil {
		return // the final parse reports nothing more: those tests end as the container did
	}
	byTest := map[string]map[string][]byte{}
	for _, f := range files {
		name, rest, ok := strings.Cut(strings.TrimPrefix(f.Name, "tests/"), "/")
		if !ok || !strings.HasPrefix(f.Name, "tests/") {
			continue
		}
		if byTest[name] == nil {
			byTest[name] = map[string][]byte{}
		}
		byTest[name][rest] = f.Data
	}
	for _, t := range l.tests {
		files := byTest[t.Name]
		l.mu.Lock()
		skip := l.seen[t.Name] || files["result.json"] == nil
		l.mu.Unlock()
		if skip {
			continue
		}
		r := l.a.scoreTest(l.ctx, l.plan.Config, t, files)
		err := l.a.Submissions.MarkTest(l.ctx, l.plan.SubmissionID, r.Result)
		l.mu.Lock()
		l.seen[t.Name] = true
		l.done = append(l.done, r)
		if err != nil && l.err == nil {
			l.err = err
		}
		l.mu.Unlock()
	}
}

// scoreTest scores one test from the files of its archive.
func (a *Activities) scoreTest(ctx context.Context, cfg contract.Assignment, t contract.TestSpec, files map[string][]byte) contract.TestRun {
	r := contract.TestResult{Name: t.Name, MaxScore: t.Points, Visibility: t.Visibility, LogTail: string(files["log.txt"])}
	if strings.TrimSpace(r.LogTail) == "" { // a clean run: the job client's log says what it did
		r.LogTail = tail(string(files["counters.log"]), 2048)
	}
	var res runResult
	if err := json.Unmarshal(files["result.json"], &res); err != nil || len(files["result.json"]) > maxResultJSON {
		r.Status, r.Feedback = contract.TestCrashed, "the job's result could not be read"
		return contract.TestRun{Result: r}
	}
	r.Seconds = float64(res.ElapsedMS) / 1000
	r.Counters = parseCounters(files["counters.log"])
	if !res.OK {
		switch {
		case res.TimedOut:
			r.Status = contract.TestTimeout
			r.Feedback = fmt.Sprintf("the job did not finish within this test's time limit of %s and was stopped", cfg.TestTimeLimit(t))
		case res.ExitCode == 137:
			r.Status = contract.TestMemory
			r.Feedback = fmt.Sprintf("the job was killed, most likely for using more than its memory limit of %d MiB", cfg.MemoryMB)
		case strings.Contains(res.Message, "output files"):
			r.Status, r.Feedback = contract.TestOutput, truncate(strings.TrimSpace(res.Message), 2048)
		default:
			r.Status, r.Feedback = contract.TestCrashed, runtimeFeedback(&res, res.ExitCode)
		}
		return contract.TestRun{Result: r}
	}
	var parts []string
	for name := range files {
		if strings.HasPrefix(name, "output/part-") && contract.ValidRelPath(name) {
			parts = append(parts, name)
		}
	}
	sort.Strings(parts)
	var got bytes.Buffer
	for _, p := range parts {
		got.Write(files[p])
		if d := files[p]; len(d) > 0 && d[len(d)-1] != '\n' {
			got.WriteByte('\n')
		}
	}
	expected, err := a.expectedOf(ctx, t)
	if err != nil {
		r.Status, r.Feedback = contract.TestCrashed, "the expected output could not be read; staff have been told"
		activity.GetLogger(ctx).Error("read expected output", "test", t.Name, "error", err)
		return contract.TestRun{Result: r}
	}
	g := Score(expected, got.Bytes(), cfg.CompareMode(t), t.Points, cfg.ShowExpected)
	tr := g.Tests[0]
	r.Passed, r.Score, r.Expected, r.Matched, r.Got, r.Diff = tr.Passed, tr.Score, tr.Expected, tr.Matched, tr.Got, tr.Diff
	r.Feedback = strings.SplitN(g.Feedback, "\n", 2)[0]
	r.Status = contract.TestFailed
	if r.Passed {
		r.Status = contract.TestPassed
	}
	// MapReduce checks: the job really ran with the reduce tasks the test
	// asks for, and its counters say what the test needs them to.
	if t.Reducers > 1 && len(parts) != t.Reducers {
		r.Passed, r.Score, r.Status = false, 0, contract.TestFailed
		r.Feedback = fmt.Sprintf("this test runs the job with %d reduce tasks, but it wrote %d output file(s): the driver must not fix the number of reducers", t.Reducers, len(parts))
	}
	for _, c := range t.Counters {
		if v := r.Counters[c.Counter]; !c.Holds(v) {
			r.Passed, r.Score, r.Status = false, 0, contract.TestFailed
			r.Feedback = fmt.Sprintf("counter check failed: %s (the job's %s was %d)", c, c.Counter, v)
			break
		}
	}
	return contract.TestRun{Result: r}
}

// expectedOf is a test's expected output, from the host cache.
func (a *Activities) expectedOf(ctx context.Context, t contract.TestSpec) ([]byte, error) {
	var buf bytes.Buffer
	for _, f := range t.ExpectedFiles {
		h, err := a.blob(ctx, f, a.Config.MaxExpected)
		if err != nil {
			return nil, err
		}
		data, err := os.ReadFile(filepath.Join(h.Path, "data"))
		h.Release()
		if err != nil {
			return nil, fmt.Errorf("read expected %s: %w", f.Name, err)
		}
		if int64(buf.Len()+len(data)) > a.Config.MaxExpected {
			return nil, fmt.Errorf("expected output of %s: %w", t.Name, store.ErrTooLarge)
		}
		buf.Write(data)
		if len(data) > 0 && data[len(data)-1] != '\n' {
			buf.WriteByte('\n')
		}
	}
	return buf.Bytes(), nil
}

// taskCounters maps the display names of Hadoop's TaskCounter group, as
// the job client prints them, to the counters' names.
var taskCounters = map[string]string{
	"Map input records": "MAP_INPUT_RECORDS", "Map output records": "MAP_OUTPUT_RECORDS",
	"Map output bytes": "MAP_OUTPUT_BYTES", "Map output materialized bytes": "MAP_OUTPUT_MATERIALIZED_BYTES",
	"Map skipped records": "MAP_SKIPPED_RECORDS", "Combine input records": "COMBINE_INPUT_RECORDS",
	"Combine output records": "COMBINE_OUTPUT_RECORDS", "Reduce input groups": "REDUCE_INPUT_GROUPS",
	"Reduce shuffle bytes": "REDUCE_SHUFFLE_BYTES", "Reduce input records": "REDUCE_INPUT_RECORDS",
	"Reduce output records": "REDUCE_OUTPUT_RECORDS", "Reduce skipped records": "REDUCE_SKIPPED_RECORDS",
	"Reduce skipped groups": "REDUCE_SKIPPED_GROUPS", "Input split bytes": "SPLIT_RAW_BYTES",
	"Spilled Records": "SPILLED_RECORDS", "Shuffled Maps": "SHUFFLED_MAPS", "Failed Shuffles": "FAILED_SHUFFLE",
	"Merged Map outputs": "MERGED_MAP_OUTPUTS", "GC time elapsed (ms)": "GC_TIME_MILLIS",
	"CPU time spent (ms)": "CPU_MILLISECONDS", "Total committed heap usage (bytes)": "COMMITTED_HEAP_BYTES",
}

// parseCounters reads the framework counters from the job client's log:
// the last "Counters: N" block, its "Map-Reduce Framework" group.
func parseCounters(log []byte) map[string]int64 {
	i := bytes.LastIndex(log, []byte("Counters: "))
	if i < 0 {
		return nil
	}
	out := map[string]int64{}
	group := ""
	sc := bufio.NewScanner(bytes.NewReader(log[i:]))
	sc.Scan() // the "Counters: N" line
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "\t\t"):
			if group != "Map-Reduce Framework" {
				continue
			}
			k, v, ok := strings.Cut(strings.TrimPrefix(line, "\t\t"), "=")
			if !ok {
				continue
			}
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if name, known := taskCounters[strings.TrimSpace(k)]; known && err == nil {
				out[name] = n
			}
		case strings.HasPrefix(line, "\t"):
			group = strings.TrimSpace(line)
		default:
			return out
		}
	}
	return out
}

// gradeTests adds up the tests' results into the submission's grade. The
// outcome is passed when every test passed, else the first failed test's;
// the feedback names no hidden test's detail (the read model has each
// test's own, which the API shows as its visibility allows).
func gradeTests(exec contract.Execution) contract.Grade {
	g := contract.Grade{Outcome: contract.OutcomePassed, Grader: exec.Grader}
	passed := 0
	for _, r := range exec.Tests {
		t := r.Result
		g.Score += t.Score
		g.MaxScore += t.MaxScore
		g.Tests = append(g.Tests, t)
		if t.Status == contract.TestPassed {
			passed++
		} else if g.Outcome == contract.OutcomePassed {
			g.Outcome = testOutcome(t.Status)
		}
	}
	g.Score = float64(int64(g.Score*100+0.5)) / 100
	g.Feedback = fmt.Sprintf("%d of %d tests passed; score %s of %s", passed, len(exec.Tests), fmtPoints(g.Score), fmtPoints(g.MaxScore))
	return g
}

func fmtPoints(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// testOutcome is the submission outcome of a test status.
func testOutcome(status string) contract.Outcome {
	switch status {
	case contract.TestTimeout:
		return contract.OutcomeTimeLimit
	case contract.TestMemory:
		return contract.OutcomeMemoryLimit
	case contract.TestOutput:
		return contract.OutcomeOutputLimit
	case contract.TestCrashed, contract.TestNotRun:
		return contract.OutcomeRuntimeError
	}
	return contract.OutcomeWrongAnswer
}
