package activities

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"

	"github.com/gradeflow/gradeflow/activities/datacache"
	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/docker/sandbox"
	"github.com/gradeflow/gradeflow/store"
)

// Execute runs a submission's MapReduce job in a fresh container of the
// Hadoop runtime image, heartbeating while it runs. It enforces the
// assignment's time limit itself: a job that exceeds it is killed and the
// result is the student outcome time_limit_exceeded, which is final. When
// the activity is canceled, or its worker stops, the container is killed.
// The job's part-* files are stored in GridFS for the compare step.
//
// Each attempt first claims its submission in the execution tracker
// (store.ClaimRun), which records the worker and host that run it. A
// submission that a newer one superseded is declined (contract.Superseded),
// and so is one whose earlier attempts killed their workers
// Config.QuarantineAfter times (contract.Quarantined): it is not run again
// until staff release it. The attempt's run is closed with how it ended;
// one that never closes was on a worker that died.
func (a *Activities) Execute(ctx context.Context, plan contract.Plan) (contract.Execution, error) {
	info := activity.GetInfo(ctx)
	log := activity.GetLogger(ctx)
	id := plan.SubmissionID
	run := contract.Run{ActivityID: info.ActivityID, Attempt: int(info.Attempt), Worker: a.Worker, Host: a.Host, Started: time.Now().UTC()}
	if run.Attempt > 1 {
		a.settlePrevious(ctx, log, info.WorkflowExecution.ID, id, run)
	}
	claim, err := a.Submissions.ClaimRun(ctx, id, run, a.Config.QuarantineAfter)
	if err != nil {
		return contract.Execution{}, err
	}
	switch claim.Claim {
	case store.ClaimSuperseded:
		log.Info("execute declined: superseded", "submission_id", id, "superseded_by", claim.SupersededBy)
		return contract.Execution{}, contract.NewSuperseded(id, claim.SupersededBy)
	case store.ClaimQuarantined:
		log.Warn("execute declined: quarantined", "submission_id", id, "dead_attempts", claim.Dead)
		return contract.Execution{}, contract.NewQuarantined(id, claim.Dead, claim.Runs)
	}
	log.Info("execute attempt started", "submission_id", id, "attempt", run.Attempt, "worker", run.Worker, "host", run.Host, "dead_attempts", claim.Dead)
	defer a.notifyRun(ctx, info.WorkflowExecution.ID, id, run)()
	ctx, beats := withLastBeat(ctx)
	exec, err := a.execute(ctx, plan)
	if !claim.Tracked {
		return exec, err
	}
	ended := time.Now().UTC()
	run.Ended, run.End = &ended, runEnd(err)
	// The end is written even when the attempt was canceled: an attempt
	// without one counts as a worker death.
	if cerr := a.closeRun(ctx, id, run, beats); cerr != nil {
		log.Warn("execute run not closed", "submission_id", id, "attempt", run.Attempt, "error", cerr)
	}
	if err == nil {
		exec.Runs = claim.Runs
		for i, r := range exec.Runs {
			if r.ActivityID == run.ActivityID && r.Attempt == run.Attempt {
				exec.Runs[i] = run
			}
		}
	}
	return exec, err
}

// Backoff of closeRun's retries, and the bound of one try.
const (
	closeRunFirstWait = 100 * time.Millisecond
	closeRunMaxWait   = 2 * time.Second
	closeRunTry       = 10 * time.Second
)

// closeRun writes run's end to the tracker. A run left without an end
// counts as its worker's death toward quarantine, so a failed write (the
// store briefly unreachable) is retried with backoff for up to
// Config.CloseRunFor, on a context the attempt's cancellation does not
// end. Meanwhile the attempt keeps heartbeating its latest details
// (beats): Temporal does not time the attempt out and start the next one,
// which would find this run open and count it dead, before the end is
// written or the retries give up; and the progress a retried attempt
// resumes from stays as it was.
func (a *Activities) closeRun(ctx context.Context, id string, run contract.Run, beats *lastBeat) error {
	limit := a.Config.CloseRunFor
	if limit <= 0 {
		limit = DefaultConfig().CloseRunFor
	}
	if details, ok := beats.get(); ok {
		defer a.beatEvery(ctx, func() any { return details })()
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), limit)
	defer cancel()
	wait := closeRunFirstWait
	for tries := 1; ; tries++ {
		tctx, cancelTry := context.WithTimeout(cctx, closeRunTry)
		err := a.Submissions.CloseRun(tctx, id, run)
		cancelTry()
		if err == nil {
			if tries > 1 {
				activity.GetLogger(ctx).Info("execute run closed", "submission_id", id, "attempt", run.Attempt, "tries", tries)
			}
			return nil
		}
		select {
		case <-cctx.Done():
			return fmt.Errorf("close run after %d tries in %s: %w", tries, limit, err)
		case <-time.After(wait):
		}
		wait = min(2*wait, closeRunMaxWait)
	}
}

// settlePrevious closes the run of the attempt before run, if it was left
// open although its attempt did not die: Temporal recorded a failure the
// attempt reported itself (its closeRun gave up on an unreachable store),
// not a timeout. Each attempt settles its predecessor before it claims, so
// the claim counts as dead only the attempts Temporal timed out. Without
// PreviousTimedOut, or when Temporal or the store does not answer, the
// open run stays open and counts, as it did before.
func (a *Activities) settlePrevious(ctx context.Context, log sdklog.Logger, workflowID, id string, run contract.Run) {
	if a.PreviousTimedOut == nil {
		return
	}
	sub, err := a.Submissions.Submission(ctx, id)
	if err != nil {
		return // the claim meets the same store
	}
	var prev *contract.Run
	for _, r := range sub.RunList() {
		if r.ActivityID == run.ActivityID && r.Attempt == run.Attempt-1 && r.Ended == nil {
			prev = &r
		}
	}
	if prev == nil {
		return
	}
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	timedOut, err := a.PreviousTimedOut(tctx, workflowID, run.ActivityID)
	cancel()
	if err != nil {
		log.Warn("previous attempt's end unknown", "submission_id", id, "attempt", prev.Attempt, "error", err)
		return
	}
	if timedOut {
		return // its worker died (or hung): it counts
	}
	ended := time.Now().UTC()
	prev.Ended, prev.End = &ended, contract.RunFailed
	if err := a.Submissions.CloseRun(ctx, id, *prev); err != nil {
		log.Warn("previous run not closed", "submission_id", id, "attempt", prev.Attempt, "error", err)
		return
	}
	log.Info("previous run closed: its attempt failed, its worker did not die", "submission_id", id, "attempt", prev.Attempt, "worker", prev.Worker)
}

// runEnd is how an attempt that returned err ended.
func runEnd(err error) contract.RunEnd {
	switch {
	case err == nil:
		return contract.RunCompleted
	case contract.IsFailure(err, contract.StudentFailure):
		return contract.RunStudent
	case errors.Is(err, context.Canceled) || temporal.IsCanceledError(err):
		return contract.RunCanceled
	}
	return contract.RunFailed
}

// execute is one claimed attempt of Execute.
func (a *Activities) execute(ctx context.Context, plan contract.Plan) (contract.Execution, error) {
	info := activity.GetInfo(ctx)
	log := activity.GetLogger(ctx)
	id := plan.SubmissionID
	defer a.notify(ctx, info.WorkflowExecution.ID, contract.StageRunning)()
	// An earlier attempt whose worker died may have left its container on
	// this engine; it must not run beside this one.
	if info.Attempt > 1 {
		a.removeStale(ctx, id, int(info.Attempt))
	}

	dir, cleanup, err := a.scratch(id, "execute", info.Attempt)
	if err != nil {
		return contract.Execution{}, err
	}
	defer cleanup()
	jobDir := filepath.Join(dir, "job")
	grader, err := a.grader(plan.Config)
	if err != nil {
		return contract.Execution{}, err
	}
	// Fetching the files and the input may take a while on a cold host. In
	// the tests form the heartbeat goes on carrying the tests that earlier
	// attempts finished, so that an attempt that dies while fetching
	// loses none of them.
	var fetching any = "fetching"
	var prog testProgress
	if len(plan.Config.Tests) > 0 {
		prog = priorProgress(ctx)
		fetching = prog
	}
	stopFetch := a.keepAlive(ctx, fetching)
	defer stopFetch() // no-op once stopped below; covers the early returns
	var cmd []string
	switch plan.Runtime {
	case contract.RuntimeStreaming:
		// The sanity step on this host may have left the files, or the
		// prefetcher fetched them while the job before ran; otherwise
		// (another host, or a retry) fetch them.
		switch {
		case a.jobs.take(id, jobDir):
		case a.usePrefetched(ctx, plan, jobDir):
			log.Info("files prefetched", "submission_id", id)
		default:
			if err := a.Files.FetchFiles(ctx, store.SubmissionPrefix(id), plan.Files, jobDir, a.Config.MaxSubmission); err != nil {
				return contract.Execution{}, err
			}
		}
		// The forbidden modules are enforced again while the mapper and
		// reducer run (guard.py).
		cmd = append([]string{"streaming", "--mapper", plan.Config.Mapper, "--reducer", plan.Config.Reducer},
			forbidArgs(plan.Config.ForbiddenModules)...)
		if plan.Config.Combiner != "" {
			cmd = append(cmd, "--combiner", plan.Config.Combiner)
		}
	case contract.RuntimeJar:
		if a.usePrefetched(ctx, plan, jobDir) {
			log.Info("files prefetched", "submission_id", id)
		} else if err := a.fetchJar(ctx, plan.Jar, jobDir); err != nil {
			return contract.Execution{}, err
		}
		cmd = []string{"jar", "--main-class", plan.Config.MainClass, "--jar", "/job/job.jar"}
	default:
		return contract.Execution{}, contract.NewConfigFailure("unknown runtime %q", plan.Runtime)
	}
	if len(plan.Config.Tests) > 0 {
		stopFetch()
		return a.executeTests(ctx, plan, prog, grader, dir, jobDir, cmd)
	}
	inputDir, release, err := a.inputs.get(ctx, a, plan.Config)
	if err != nil {
		return contract.Execution{}, err
	}
	defer release()
	stopFetch()

	limit := time.Duration(plan.Config.TimeLimitSeconds) * time.Second
	points := plan.Config.Points
	spec := a.spec(ctx, plan.Request, "execute", cmd, limits{memoryMB: plan.Config.MemoryMB, cpus: plan.Config.CPUs})
	spec.Image = grader.Image
	spec.Mounts = []sandbox.Mount{{Source: jobDir, Target: "/job"}, {Source: inputDir, Target: "/input"}}
	spec.TimeLimit = limit
	// The runner's own backstop, should this worker die and leave it running.
	spec.Env = append(spec.Env, "GRADEFLOW_TIMEOUT_SECONDS="+strconv.Itoa(plan.Config.TimeLimitSeconds+30))
	log.Info("job starting", "submission_id", id)
	res, err := a.Sandbox.Run(ctx, spec)
	if err != nil {
		return contract.Execution{}, err
	}
	grader.ImageID = res.ImageID
	log.Info("job finished", "submission_id", id, "exit_code", res.ExitCode, "elapsed", res.Elapsed, "oom_killed", res.OOMKilled, "timed_out", res.TimedOut)
	if err := a.Submissions.MarkExecuteEnded(ctx, id, time.Now()); err != nil {
		return contract.Execution{}, err
	}
	// Every score names what graded it, failures included.
	fail := func(v contract.Grade) error {
		v.MaxScore, v.Grader = points, grader
		return contract.NewStudentFailure(v)
	}
	if v, failed := judgeRun(res, limit, plan.Config.MemoryMB, a.Config.MaxOutput); failed {
		return contract.Execution{}, fail(v)
	}
	b, err := parseBundle(res.Stdout, MaxOutputFiles, a.Config.MaxOutput)
	if err != nil {
		// The runner (not student code) writes the result, after every
		// student process is gone. No readable result from a job that
		// killed its own runner (exit 137 from a fork bomb, say), or twice
		// in a row, is the submission's doing: scored, not retried again.
		if res.ExitCode != 0 || info.Attempt > 1 {
			log.Warn("no readable result", "exit_code", res.ExitCode, "error", err)
			return contract.Execution{}, fail(contract.Grade{
				Outcome:  contract.OutcomeRuntimeError,
				Feedback: fmt.Sprintf("the job ended abnormally without a result (exit code %d)", res.ExitCode),
			})
		}
		return contract.Execution{}, fmt.Errorf("execute container: %w", err)
	}
	// Verdict facts come from the engine and the worker: a non-zero exit
	// of the container fails the job whatever result.json says.
	if !b.result.OK || res.ExitCode != 0 {
		return contract.Execution{}, fail(contract.Grade{Outcome: contract.OutcomeRuntimeError, Feedback: runtimeFeedback(b.result, res.ExitCode)})
	}
	if len(b.files) > MaxOutputFiles {
		return contract.Execution{}, fail(contract.Grade{
			Outcome:  contract.OutcomeOutputLimit,
			Feedback: fmt.Sprintf("the job wrote %d output files, over the limit of %d", len(b.files), MaxOutputFiles),
		})
	}

	// Each attempt writes under its own prefix and returns the exact names,
	// so an earlier attempt's leftovers are never read and need no cleanup
	// on the hot path.
	exec := contract.Execution{RunSeconds: res.Elapsed.Seconds(), Grader: grader}
	names := make([]string, 0, len(b.files))
	for name := range b.files {
		if strings.HasPrefix(name, "output/") && contract.ValidRelPath(name) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	defer a.keepAlive(ctx, "storing output")()
	for _, name := range names {
		gname := fmt.Sprintf("%sa%d/%s", store.OutputPrefix(id), info.Attempt, strings.TrimPrefix(name, "output/"))
		if err := a.Files.PutFile(ctx, gname, b.files[name]); err != nil {
			return contract.Execution{}, err
		}
		exec.Outputs = append(exec.Outputs, gname)
	}
	return exec, nil
}

// fetchJar downloads a submission's compiled jar into jobDir/job.jar.
func (a *Activities) fetchJar(ctx context.Context, name, jobDir string) error {
	jar, err := a.Files.ReadFile(ctx, name, a.Config.MaxSubmission)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(jobDir, 0o755); err != nil {
		return fmt.Errorf("job dir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(jobDir, "job.jar"), jar, 0o644); err != nil {
		return fmt.Errorf("write jar: %w", err)
	}
	return nil
}

// forbidArgs are the runner's arguments naming an assignment's forbidden
// modules (or APIs, for Java), if it has any.
func forbidArgs(modules []string) []string {
	if len(modules) == 0 {
		return nil
	}
	return []string{"--forbid", strings.Join(modules, ",")}
}

// MaxOutputFiles caps the part files a job may write (and the entries of
// its result tar); the runner enforces it too.
const MaxOutputFiles = 1000

// judgeRun turns a killed or flooded container into a student outcome.
func judgeRun(res sandbox.Result, limit time.Duration, memoryMB int, maxOutput int64) (contract.Grade, bool) {
	switch {
	case res.TimedOut:
		return contract.Grade{Outcome: contract.OutcomeTimeLimit, Feedback: fmt.Sprintf("the job did not finish within the time limit of %s and was stopped", limit)}, true
	case res.OOMKilled:
		return contract.Grade{Outcome: contract.OutcomeMemoryLimit, Feedback: fmt.Sprintf("the job used more than its memory limit of %d MiB and was stopped", memoryMB)}, true
	case res.StdoutTruncated:
		return contract.Grade{Outcome: contract.OutcomeOutputLimit, Feedback: fmt.Sprintf("the job's output exceeded the limit of %d bytes", maxOutput)}, true
	}
	return contract.Grade{}, false
}

// runtimeFeedback is the runner's summary of a failed job: the step that
// failed and the error's type and place. The container's raw stderr is not
// shown: student code can print anything there, the input data included.
func runtimeFeedback(r *runResult, exitCode int) string {
	msg := strings.TrimSpace(r.Message)
	if msg == "" {
		msg = fmt.Sprintf("the job failed (exit code %d)", exitCode)
	}
	return truncate(msg, 2048)
}

// spec builds the sandbox spec shared by every container of a submission.
// The activity heartbeats while the container runs, so that a dead worker
// is noticed within the heartbeat timeout.
func (a *Activities) spec(ctx context.Context, req contract.Request, kind string, cmd []string, l limits) sandbox.Spec {
	info := activity.GetInfo(ctx)
	mem := int64(l.memoryMB) << 20
	attempt := strconv.Itoa(int(info.Attempt))
	return sandbox.Spec{
		Name:  fmt.Sprintf("gradeflow-%s-%s-a%s", kind, req.SubmissionID, attempt),
		Image: a.Config.Image,
		Cmd:   cmd,
		Labels: map[string]string{
			sandbox.LabelManaged:    "true",
			sandbox.LabelSubmission: req.SubmissionID,
			sandbox.LabelWorkflow:   info.WorkflowExecution.ID,
			sandbox.LabelActivity:   info.ActivityID,
			sandbox.LabelAttempt:    attempt,
			sandbox.LabelKind:       kind,
			sandbox.LabelNamespace:  a.NamespaceID,
		},
		MemoryBytes:  mem,
		NanoCPUs:     int64(l.cpus * 1e9),
		PidsLimit:    a.Config.PidsLimit,
		ScratchBytes: int64(float64(mem) * a.Config.ScratchFraction),
		StdoutCap:    a.Config.MaxOutput,
		StderrCap:    a.Config.StderrBytes,
		TickEvery:    a.Config.HeartbeatEvery,
		Tick: func(elapsed time.Duration) {
			a.beat(ctx, elapsed.Round(time.Millisecond).String())
		},
	}
}

// limits are a container's resources.
type limits struct {
	memoryMB int
	cpus     float64
}

// sanityLimits are the resources of a sanity check's container.
var sanityLimits = limits{memoryMB: 1024, cpus: 1}

// removeStale removes containers of earlier attempts of this submission.
func (a *Activities) removeStale(ctx context.Context, id string, attempt int) {
	list, err := a.Sandbox.ListManaged(ctx)
	if err != nil {
		return // the run itself will surface an engine problem
	}
	for _, c := range list {
		if c.Labels[sandbox.LabelSubmission] != id || c.Labels[sandbox.LabelKind] != "execute" || !c.OfNamespace(a.NamespaceID) {
			continue
		}
		if n, _ := strconv.Atoi(c.Labels[sandbox.LabelAttempt]); n < attempt {
			_ = a.Sandbox.Remove(ctx, c.ID)
		}
	}
}

// scratch makes a private host directory for one attempt.
func (a *Activities) scratch(id, kind string, attempt int32) (string, func(), error) {
	dir := filepath.Join(a.Config.WorkDir, "runs", fmt.Sprintf("%s-%s-a%d", id, kind, attempt))
	_ = os.RemoveAll(dir) // left by a crashed earlier try
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, fmt.Errorf("scratch dir: %w", err)
	}
	return dir, func() { _ = os.RemoveAll(dir) }, nil
}

// inputCache keeps each assignment version's input data on the host, in a
// bounded datacache: fetched from GridFS once per version rather than once
// per job, a fetch locking only its own version, the least recently used
// versions evicted once no job reads them.
type inputCache struct {
	once  sync.Once
	cache *datacache.Cache
	err   error
}

// open opens the cache on first use.
func (c *inputCache) open(a *Activities) (*datacache.Cache, error) {
	c.once.Do(func() {
		c.cache, c.err = datacache.Open(filepath.Join(a.Config.WorkDir, "inputs"), a.Config.InputCacheBytes)
	})
	if c.err != nil {
		return nil, fmt.Errorf("input cache: %w", c.err)
	}
	return c.cache, nil
}

// get returns the host directory holding cfg's input, and the release the
// job calls once it no longer reads it.
func (c *inputCache) get(ctx context.Context, a *Activities, cfg contract.Assignment) (string, func(), error) {
	if _, err := c.open(a); err != nil {
		return "", nil, err
	}
	key := fmt.Sprintf("input-%s-%d", cfg.Name, cfg.UpdatedAt.UnixMilli())
	prefix := store.InputPrefix(cfg.Name)
	rels := make([]string, 0, len(cfg.InputFiles))
	for _, name := range cfg.InputFiles {
		rel, ok := strings.CutPrefix(name, prefix)
		if !ok {
			return "", nil, contract.NewConfigFailure("assignment %s: input file %s is not under %s", cfg.Name, name, prefix)
		}
		rels = append(rels, rel)
	}
	h, err := c.cache.Get(ctx, key, func(ctx context.Context, dir string) error {
		return a.Files.FetchFiles(ctx, prefix, rels, dir, a.Config.MaxInput)
	})
	if err != nil {
		return "", nil, err
	}
	return h.Path, h.Release, nil
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
