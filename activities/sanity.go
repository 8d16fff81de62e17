package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/gradeflow/gradeflow/activities/checkers"
	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/docker/sandbox"
	"github.com/gradeflow/gradeflow/store"
)

// Sanity checks a submission before it may queue for execution: Python
// files are compiled and scanned for forbidden imports, Java sources are
// compiled against the Hadoop jars. Both happen inside a sandbox container,
// so no student code is parsed or run on the worker host: a warm checker
// (Checkers) when the worker keeps them, else, or when the warm checker
// fails, a container of its own. A compiled jar is stored in GridFS for
// the execute step.
func (a *Activities) Sanity(ctx context.Context, req contract.Request) (contract.Plan, error) {
	info := activity.GetInfo(ctx)
	// The stage mark goes out beside the reads, the fetch and the check:
	// the step's later writes wait for it, so the marks keep their order,
	// and its failure is the step's (retried) whatever the check found.
	marked := a.markAsync(ctx, req.SubmissionID, store.Mark{Stage: contract.StageSanity, Activity: "sanity", Attempt: int(info.Attempt), At: time.Now()})
	plan, err := a.sanity(ctx, req, marked)
	if merr := marked(); merr != nil {
		return contract.Plan{}, merr
	}
	return plan, err
}

// markAsync writes a stage mark concurrently and returns a wait for its
// result, which may be called more than once.
func (a *Activities) markAsync(ctx context.Context, id string, m store.Mark) (wait func() error) {
	done := make(chan struct{})
	var err error
	go func() {
		defer close(done)
		err = a.Submissions.MarkStage(ctx, id, m)
	}()
	return func() error {
		<-done
		return err
	}
}

// sanity is Sanity's work; marked waits for its stage mark.
func (a *Activities) sanity(ctx context.Context, req contract.Request, marked func() error) (contract.Plan, error) {
	info := activity.GetInfo(ctx)
	dir, cleanup, err := a.scratch(req.SubmissionID, "sanity", info.Attempt)
	if err != nil {
		return contract.Plan{}, err
	}
	defer cleanup()
	// The submission's files are fetched beside the read of its
	// assignment. Their names come with the request (the intake passes
	// them); a workflow started before that reads them from the
	// submission's document first. Names the checks below refuse are not
	// fetched.
	var files []string
	var filesErr, namesErr error
	fetched := make(chan struct{})
	go func() {
		defer close(fetched)
		if files = req.Files; len(files) == 0 {
			if files, filesErr = a.submissionFiles(ctx, req.SubmissionID); filesErr != nil {
				return
			}
		}
		if namesErr = contract.CheckFileNames(files); namesErr != nil {
			return
		}
		stop := a.keepAlive(ctx, "fetching")
		filesErr = a.Files.FetchFiles(ctx, store.SubmissionPrefix(req.SubmissionID), files, dir+"/job", a.Config.MaxSubmission)
		stop()
	}()
	cfg, err := a.Submissions.Assignment(ctx, req.Assignment)
	<-fetched
	if errors.Is(err, store.ErrNotFound) {
		return contract.Plan{}, contract.NewConfigFailure("assignment %q does not exist", req.Assignment)
	}
	if err != nil {
		return contract.Plan{}, err
	}
	cfg.Defaults()
	for _, t := range cfg.TestList() {
		if len(t.ExpectedFiles) == 0 {
			return contract.Plan{}, contract.NewConfigFailure("assignment %q: test %s has no expected output", req.Assignment, t.Name)
		}
	}

	if namesErr != nil {
		return contract.Plan{}, contract.NewStudentFailure(contract.Grade{Outcome: contract.OutcomeInvalidSubmission, Feedback: namesErr.Error(), MaxScore: cfg.Points})
	}
	if filesErr != nil {
		return contract.Plan{}, filesErr
	}
	runtime, err := DetectRuntime(cfg, files)
	if err != nil {
		return contract.Plan{}, contract.NewStudentFailure(contract.Grade{Outcome: contract.OutcomeInvalidSubmission, Feedback: err.Error(), MaxScore: cfg.Points})
	}
	plan := contract.Plan{Request: req, Config: cfg, Runtime: runtime, Files: files}

	b, ok := a.warmCheck(ctx, runtime, cfg, dir+"/job")
	if !ok {
		cmd := []string{"sanity-python"}
		if runtime == contract.RuntimeJar {
			cmd = []string{"compile-java", "--main-class", cfg.MainClass}
		}
		cmd = append(cmd, forbidArgs(cfg.ForbiddenModules)...)
		spec := a.spec(ctx, req, "sanity", cmd, sanityLimits)
		spec.Mounts = []sandbox.Mount{{Source: dir + "/job", Target: "/job"}}
		spec.TimeLimit = a.Config.SanityTimeout
		res, err := a.Sandbox.Run(ctx, spec)
		if err != nil {
			return contract.Plan{}, err
		}
		if res.TimedOut {
			return contract.Plan{}, contract.NewStudentFailure(contract.Grade{Outcome: compileOutcome(runtime), Feedback: fmt.Sprintf("the check did not finish within %s", a.Config.SanityTimeout), MaxScore: cfg.Points})
		}
		b, err = parseBundle(res.Stdout, 1, a.Config.MaxSubmission+1<<20)
		if err != nil {
			// The checker is our code, and it reports its own crashes as a
			// result. No result at all is retried once, then charged to the
			// submission that causes it (never an endless infrastructure retry).
			if info.Attempt > 1 {
				activity.GetLogger(ctx).Warn("sanity check left no result", "exit_code", res.ExitCode, "error", err, "stderr", tail(res.Stderr, 2048))
				return contract.Plan{}, contract.NewStudentFailure(contract.Grade{Outcome: compileOutcome(runtime), Feedback: "the check could not process this submission", MaxScore: cfg.Points})
			}
			return contract.Plan{}, fmt.Errorf("sanity container (exit %d): %w: %s", res.ExitCode, err, tail(res.Stderr, 2048))
		}
	}
	if !b.result.OK {
		g := contract.Grade{
			Outcome:  sanityOutcome(runtime, b.result),
			Feedback: sanityFeedback(runtime, b.result),
			MaxScore: cfg.Points,
		}
		if err := marked(); err != nil {
			return contract.Plan{}, err
		}
		a.recordVerdict(ctx, req, g)
		return contract.Plan{}, contract.NewStudentFailure(g)
	}
	if runtime == contract.RuntimeJar {
		jar, ok := b.files["job.jar"]
		if !ok {
			return contract.Plan{}, fmt.Errorf("sanity container reported success but wrote no job.jar")
		}
		plan.Jar = store.ArtifactFile(req.SubmissionID, "job.jar")
		stopUpload := a.keepAlive(ctx, "storing jar")
		err := a.Files.PutFile(ctx, plan.Jar, jar)
		stopUpload()
		if err != nil {
			return contract.Plan{}, err
		}
	}
	if runtime == contract.RuntimeStreaming {
		// Hand the files to the execute step, should it run on this host.
		a.jobs.keep(a, req.SubmissionID, dir+"/job")
	}
	if err := marked(); err != nil {
		return contract.Plan{}, err
	}
	if err := a.Submissions.MarkStage(ctx, req.SubmissionID, store.Mark{Stage: contract.StageQueued, At: time.Now()}); err != nil {
		return contract.Plan{}, err
	}
	return plan, nil
}

// submissionFiles lists a submission's files, from its document (one read
// by _id). A submission without one was not made through the intake, and
// cannot be graded: its files are unknown.
func (a *Activities) submissionFiles(ctx context.Context, id string) ([]string, error) {
	sub, err := a.Submissions.Submission(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && len(sub.Files) == 0) {
		return nil, contract.NewConfigFailure("submission %s has no document naming its files: submit it through the API or the starter", id)
	}
	if err != nil {
		return nil, err
	}
	return sub.Files, nil
}

// DetectRuntime decides how a submission runs from its file names: Java
// sources or a jar run with RunJar; a mapper and a reducer run with Hadoop
// streaming. It explains what is missing otherwise.
func DetectRuntime(cfg contract.Assignment, files []string) (string, error) {
	has := map[string]bool{}
	var java, jars, py int
	for _, f := range files {
		has[f] = true
		switch path.Ext(f) {
		case ".java":
			java++
		case ".jar":
			jars++
		case ".py":
			py++
		}
	}
	var runtime string
	switch {
	case java > 0 && jars > 0:
		return "", fmt.Errorf("submit Java sources or one jar, not both")
	case jars > 1:
		return "", fmt.Errorf("submit one jar, not %d", jars)
	case java > 0 || jars == 1:
		runtime = contract.RuntimeJar
	case has[cfg.Mapper] && has[cfg.Reducer]:
		runtime = contract.RuntimeStreaming
	case py > 0:
		missing := []string{}
		for _, f := range []string{cfg.Mapper, cfg.Reducer} {
			if !has[f] {
				missing = append(missing, f)
			}
		}
		sort.Strings(missing)
		return "", fmt.Errorf("a streaming submission needs %s and %s; missing %s", cfg.Mapper, cfg.Reducer, strings.Join(missing, ", "))
	default:
		return "", fmt.Errorf("no runnable files: submit %s and %s, or Java sources with class %s", cfg.Mapper, cfg.Reducer, cfg.MainClass)
	}
	if !cfg.Allows(runtime) {
		return "", fmt.Errorf("assignment %s does not accept %s submissions (it accepts %s)", cfg.Name, runtime, strings.Join(cfg.Runtimes, ", "))
	}
	return runtime, nil
}

func compileOutcome(runtime string) contract.Outcome {
	if runtime == contract.RuntimeJar {
		return contract.OutcomeCompileError
	}
	return contract.OutcomeSyntaxError
}

// sanityOutcome picks the outcome of a failed check: syntax errors come
// before forbidden imports, since they stop everything else.
func sanityOutcome(runtime string, r *runResult) contract.Outcome {
	if runtime == contract.RuntimeJar {
		return contract.OutcomeCompileError
	}
	for _, e := range r.Errors {
		if e.Category == "syntax" {
			return contract.OutcomeSyntaxError
		}
	}
	if len(r.Errors) > 0 {
		return contract.OutcomeForbiddenImport
	}
	return contract.OutcomeSyntaxError
}

// sanityFeedback is the compiler's own message for Java (it shows the
// offending line), and one line per problem for Python.
func sanityFeedback(runtime string, r *runResult) string {
	var sb strings.Builder
	if runtime == contract.RuntimeJar || len(r.Errors) == 0 {
		sb.WriteString(strings.TrimSpace(r.Message))
	}
	for _, e := range r.Errors {
		if runtime == contract.RuntimeJar {
			break
		}
		if sb.Len() > 0 {
			sb.WriteByte('\n')
		}
		sb.WriteString(e.String())
	}
	return truncate(sb.String(), 4096)
}

// recordVerdict writes a failed check's verdict to the read model at once:
// the grade that the workflow's Record step writes again after it (the
// same upsert keyed by the submission ID, with the same fields), so the
// student reads it a workflow round trip sooner. Best effort: should it
// fail, the Record step still writes it.
func (a *Activities) recordVerdict(ctx context.Context, req contract.Request, g contract.Grade) {
	g.Status = contract.StatusGraded
	owner := store.Submission{Assignment: req.Assignment, Student: req.Student, WorkflowID: req.WorkflowID}
	if err := a.Submissions.Record(ctx, req.SubmissionID, owner, g, time.Now()); err != nil {
		activity.GetLogger(ctx).Warn("early verdict not recorded: the Record step will", "error", err)
	}
}

// warmCheck asks a warm checker for the verdict, as the one-shot
// container's bundle. false means it could not answer (no checker, or the
// checker failed and is being replaced): the caller runs the one-shot
// container, so no request is lost.
func (a *Activities) warmCheck(ctx context.Context, runtime string, cfg contract.Assignment, dir string) (bundle, bool) {
	if a.Checkers == nil {
		return bundle{}, false
	}
	kind := checkers.KindPython
	if runtime == contract.RuntimeJar {
		kind = checkers.KindJava
	}
	log := activity.GetLogger(ctx)
	// A hung checker is only given up after the pool's request limit,
	// longer than the heartbeat timeout.
	stop := a.keepAlive(ctx, "checking")
	resp, err := a.Checkers.Check(ctx, checkers.Request{Kind: kind, Dir: dir, Forbid: cfg.ForbiddenModules, MainClass: cfg.MainClass})
	stop()
	if err != nil {
		log.Warn("warm checker did not answer: one-shot container", "error", err)
		return bundle{}, false
	}
	var r runResult
	if err := json.Unmarshal(resp.Result, &r); err != nil || len(resp.Result) > maxResultJSON {
		log.Warn("warm checker answered no result: one-shot container", "checker", resp.Checker, "error", err)
		return bundle{}, false
	}
	b := bundle{result: &r, files: map[string][]byte{}}
	if resp.Jar != nil {
		if int64(len(resp.Jar)) > a.Config.MaxSubmission+1<<20 {
			log.Warn("warm checker's jar is over the cap: one-shot container", "checker", resp.Checker, "bytes", len(resp.Jar))
			return bundle{}, false
		}
		b.files["job.jar"] = resp.Jar
	}
	return b, true
}

// CheckerSpec is the container of a warm sanity checker of a worker with
// config cfg serving the namespace whose ID is namespaceID: the runtime
// image running serve.py (parse and compile only) with the sanity step's
// limits and the sandbox's hardening, the host directory spool mounted
// read-only at /spool, labelled with the worker (owner) that keeps it. (A
// function, not a method: every method of Activities is an activity.)
func CheckerSpec(cfg Config, namespaceID, name, spool, owner string) sandbox.Spec {
	mem := int64(sanityLimits.memoryMB) << 20
	return sandbox.Spec{
		Name:       name,
		Image:      cfg.Image,
		Entrypoint: []string{"python3", "-I", "/opt/gradeflow/serve.py"},
		Labels: map[string]string{
			sandbox.LabelManaged:   "true",
			sandbox.LabelKind:      sandbox.KindChecker,
			sandbox.LabelNamespace: namespaceID,
			sandbox.LabelOwner:     owner,
		},
		Mounts:       []sandbox.Mount{{Source: spool, Target: "/spool"}},
		MemoryBytes:  mem,
		NanoCPUs:     int64(sanityLimits.cpus * 1e9),
		PidsLimit:    cfg.PidsLimit,
		ScratchBytes: int64(float64(mem) * cfg.ScratchFraction),
		// One answer line: a base64 jar of up to a submission's size.
		StdoutCap: (cfg.MaxSubmission+1<<20)*4/3 + maxResultJSON + 1<<10,
		StderrCap: cfg.StderrBytes,
	}
}
