//go:build stack

package test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/gradeflow/gradeflow/activities"
	"github.com/gradeflow/gradeflow/activities/checkers"
	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/docker/sandbox"
)

// containerLog records the grading containers created on the engine while
// it watches (Docker's own events), so a test can count them.
type containerLog struct {
	mu      sync.Mutex
	created []events.Actor
	stop    func()
	done    chan struct{}
}

func watchContainers(t testing.TB) *containerLog {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &containerLog{stop: cancel, done: make(chan struct{})}
	msgs, errs := cli.Events(ctx, events.ListOptions{Filters: filters.NewArgs(
		filters.Arg("type", "container"), filters.Arg("event", "create"), filters.Arg("label", sandbox.LabelManaged+"=true"))})
	go func() {
		defer close(l.done)
		defer func() { _ = cli.Close() }()
		for {
			select {
			case m := <-msgs:
				l.mu.Lock()
				l.created = append(l.created, m.Actor)
				l.mu.Unlock()
			case <-errs:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	// The subscription is live once the engine answers it; give it a moment.
	time.Sleep(200 * time.Millisecond)
	t.Cleanup(l.close)
	return l
}

func (l *containerLog) close() {
	l.stop()
	<-l.done
}

// of returns the containers created so far that match keep.
func (l *containerLog) of(keep func(labels map[string]string) bool) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var names []string
	for _, a := range l.created {
		if keep(a.Attributes) {
			names = append(names, a.Attributes["name"])
		}
	}
	return names
}

// ownerOf is the Temporal identity of a worker process of the stack, as
// its warm checkers are labelled.
func ownerOf(p *proc) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%d@%s", p.Cmd.Process.Pid, host)
}

// waitCheckersReady waits until the worker's log says n warm checkers are
// ready in all.
func waitCheckersReady(t testing.TB, p *proc, n int) {
	t.Helper()
	waitFor(t, 3*time.Minute, fmt.Sprintf("%d warm checkers ready", n), func() (bool, error) {
		raw, err := os.ReadFile(p.LogPath)
		return strings.Count(string(raw), "warm checker ready") >= n, err
	})
}

// sanityCase is a submission and the outcome its sanity check leads to.
type sanityCase struct {
	example string
	outcome contract.Outcome
}

var sanityCases = []sanityCase{
	{"python-syntax-error", contract.OutcomeSyntaxError},
	{"python-forbidden-import", contract.OutcomeForbiddenImport},
	{"java-compile-error", contract.OutcomeCompileError},
	{"python-correct", contract.OutcomePassed}, // passes sanity, then runs
	{"java-correct", contract.OutcomePassed},   // the checker's jar runs
}

// TestWarmSanityNoContainerPerSubmission: with warm checkers on (the
// default), Python and Java submissions — good ones, syntax and compile
// errors, a forbidden import — get their right outcomes, and no container
// is started for their sanity checks: none of kind sanity, and no new
// checker. A submission that passes sanity starts exactly one container,
// its job's.
func TestWarmSanityNoContainerPerSubmission(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	waitCheckersReady(t, sanityWorker, 2)
	watch := watchContainers(t)
	batch := randHex(3)
	var ids []string
	for round := 0; round < 2; round++ {
		var wg sync.WaitGroup
		for _, c := range sanityCases {
			id := fmt.Sprintf("warm-%s-%s-%d", c.example, batch, round)
			ids = append(ids, id)
			wg.Go(func() {
				res := submit(t, ctx, id, filepath.Join(stk.root, exampleDir, "submissions", c.example))
				if res.Outcome != c.outcome {
					t.Errorf("%s: outcome %s, want %s; feedback:\n%s", id, res.Outcome, c.outcome, res.Feedback)
				}
				if c.outcome != contract.OutcomePassed && res.Feedback == "" {
					t.Errorf("%s: no feedback", id)
				}
			})
		}
		wg.Wait()
	}
	owner := ownerOf(sanityWorker)
	if got := watch.of(func(l map[string]string) bool {
		return l[sandbox.LabelKind] == sandbox.KindChecker && l[sandbox.LabelOwner] == owner
	}); len(got) != 0 {
		t.Errorf("checkers started during the submissions: %v", got)
	}
	mine := map[string]bool{}
	for _, id := range ids {
		mine[id] = true
	}
	perSub := map[string][]string{}
	watch.mu.Lock()
	for _, a := range watch.created {
		if id := a.Attributes[sandbox.LabelSubmission]; mine[id] {
			perSub[id] = append(perSub[id], a.Attributes[sandbox.LabelKind])
		}
	}
	watch.mu.Unlock()
	for _, id := range ids {
		kinds := perSub[id]
		want := []string{}
		if strings.Contains(id, "-correct-") {
			want = []string{"execute"}
		}
		if fmt.Sprint(kinds) != fmt.Sprint(want) {
			t.Errorf("%s: containers started %v, want %v", id, kinds, want)
		}
	}
}

// TestWarmCheckerCrashFallsBack kills every warm checker of the sanity
// worker behind its back: the next submissions still get their right
// verdicts (a checker found dead is replaced, and its request answered by
// a container of its own), and the pool is warm again afterwards.
func TestWarmCheckerCrashFallsBack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	waitCheckersReady(t, sanityWorker, 2)
	owner := ownerOf(sanityWorker)
	all, err := stk.docker.ListManaged(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var killed []string
	for _, c := range all {
		if c.Labels[sandbox.LabelKind] == sandbox.KindChecker && c.Labels[sandbox.LabelOwner] == owner && c.State == "running" {
			if err := stk.docker.Remove(ctx, c.ID); err != nil {
				t.Fatal(err)
			}
			killed = append(killed, c.Name)
		}
	}
	if len(killed) < 2 {
		t.Fatalf("found %d running checkers of %s, want 2: %v", len(killed), owner, all)
	}
	raw, _ := os.ReadFile(sanityWorker.LogPath)
	readyBefore := strings.Count(string(raw), "warm checker ready")
	watch := watchContainers(t)
	batch := randHex(3)
	var wg sync.WaitGroup
	for _, c := range sanityCases[:3] {
		id := fmt.Sprintf("crash-%s-%s", c.example, batch)
		wg.Go(func() {
			res := submit(t, ctx, id, filepath.Join(stk.root, exampleDir, "submissions", c.example))
			if res.Outcome != c.outcome {
				t.Errorf("%s: outcome %s, want %s; feedback:\n%s", id, res.Outcome, c.outcome, res.Feedback)
			}
		})
	}
	wg.Wait()
	waitCheckersReady(t, sanityWorker, readyBefore+2)
	if got := watch.of(func(l map[string]string) bool {
		return l[sandbox.LabelKind] == sandbox.KindChecker && l[sandbox.LabelOwner] == owner
	}); len(got) < 2 {
		t.Errorf("checkers started after the crash: %v, want 2 replacements", got)
	}
	for _, name := range killed {
		for _, c := range watch.of(func(l map[string]string) bool { return true }) {
			if c == name {
				t.Errorf("a killed checker's name came back: %s", name)
			}
		}
	}
	// Warm again: the next check starts no container.
	before := len(watch.of(func(map[string]string) bool { return true }))
	id := "crash-after-" + batch
	if res := submit(t, ctx, id, filepath.Join(stk.root, exampleDir, "submissions", "python-syntax-error")); res.Outcome != contract.OutcomeSyntaxError {
		t.Errorf("%s: outcome %s", id, res.Outcome)
	}
	if after := watch.of(func(map[string]string) bool { return true }); len(after) != before {
		t.Errorf("containers started for a check after the restart: %v", after[before:])
	}
}

// TestWarmCheckerHangFallsBack freezes every warm checker of the sanity
// worker (docker pause): the check waits for the per-request limit (20 s),
// then the frozen checker is killed and replaced and the submission gets
// its verdict from a container of its own.
func TestWarmCheckerHangFallsBack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	waitCheckersReady(t, sanityWorker, 2)
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cli.Close() }()
	owner := ownerOf(sanityWorker)
	all, err := stk.docker.ListManaged(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var frozen []string
	for _, c := range all {
		if c.Labels[sandbox.LabelKind] == sandbox.KindChecker && c.Labels[sandbox.LabelOwner] == owner && c.State == "running" {
			if err := cli.ContainerPause(ctx, c.ID); err != nil {
				t.Fatal(err)
			}
			frozen = append(frozen, c.ID)
		}
	}
	// A checker the check did not reach stays frozen: thaw it for the
	// tests that follow.
	t.Cleanup(func() {
		for _, id := range frozen {
			_ = cli.ContainerUnpause(context.Background(), id)
		}
	})
	if len(frozen) < 2 {
		t.Fatalf("found %d running checkers, want 2", len(frozen))
	}
	raw, _ := os.ReadFile(sanityWorker.LogPath)
	readyBefore := strings.Count(string(raw), "warm checker ready")
	watch := watchContainers(t)
	id := "hang-" + randHex(3)
	start := time.Now()
	res := submit(t, ctx, id, filepath.Join(stk.root, exampleDir, "submissions", "python-forbidden-import"))
	took := time.Since(start)
	if res.Outcome != contract.OutcomeForbiddenImport {
		t.Errorf("outcome %s, want forbidden_import; feedback:\n%s", res.Outcome, res.Feedback)
	}
	if took < 20*time.Second {
		t.Errorf("graded in %s: the frozen checker cannot have answered", took)
	}
	oneShot := watch.of(func(l map[string]string) bool {
		return l[sandbox.LabelSubmission] == id && l[sandbox.LabelKind] == "sanity"
	})
	if len(oneShot) != 1 {
		t.Errorf("one-shot sanity containers %v, want 1", oneShot)
	}
	if sub, err := stk.store.Submission(ctx, id); err != nil || sub.Attempts["sanity"] != 1 {
		t.Errorf("sanity attempts %v (%v), want 1: the wait must not cost the attempt", sub.Attempts, err)
	}
	waitCheckersReady(t, sanityWorker, readyBefore+1)
	all, err = stk.docker.ListManaged(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gone := 0
	for _, fid := range frozen {
		found := false
		for _, c := range all {
			found = found || c.ID == fid
		}
		if !found {
			gone++
		}
	}
	if gone < 1 {
		t.Errorf("no frozen checker was removed")
	}
}

// TestDeadWorkersCheckersRemoved: a sanity worker killed with SIGKILL
// leaves its warm checkers running; another worker's janitor removes them
// and their spool directories once the dead worker has stopped polling for
// two minutes, and leaves the live worker's own checkers alone.
func TestDeadWorkersCheckersRemoved(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	doomed, err := stk.startWorker(ctx, "worker-sanity-doomed", "sanity", "GRADEFLOW_SANITY_SLOTS=1")
	if err != nil {
		t.Fatal(err)
	}
	waitCheckersReady(t, doomed, 1)
	owner := ownerOf(doomed)
	var names []string
	checkersOf := func(owner string) (int, error) {
		all, err := stk.docker.ListManaged(ctx)
		names = nil
		for _, c := range all {
			if c.Labels[sandbox.LabelKind] == sandbox.KindChecker && c.Labels[sandbox.LabelOwner] == owner {
				names = append(names, c.Name)
			}
		}
		return len(names), err
	}
	doomed.Kill()
	killed := time.Now()
	if n, err := checkersOf(owner); err != nil || n != 1 {
		t.Fatalf("the killed worker left %d checkers (%v), want its 1", n, err)
	}
	spool := filepath.Join(stk.dir, "work", "checkers", names[0])
	if _, err := os.Stat(spool); err != nil {
		t.Fatalf("the dead checker's spool directory: %v", err)
	}
	waitFor(t, 4*time.Minute, "the dead worker's checker removed", func() (bool, error) {
		n, err := checkersOf(owner)
		return n == 0, err
	})
	t.Logf("removed %s after the kill", time.Since(killed).Round(time.Second))
	if _, err := os.Stat(spool); !os.IsNotExist(err) {
		t.Errorf("the dead checker's spool directory %s is still there (%v)", spool, err)
	}
	if n, err := checkersOf(ownerOf(sanityWorker)); err != nil || n != 2 {
		t.Errorf("the live worker has %d checkers (%v), want its 2", n, err)
	}
}

// TestWarmVerdictsMatchOneShot checks every example and hostile-sandbox
// submission with a warm checker (the pool the workers use, on the real
// engine) and with the one-shot runner container: result.json must be the
// same but for its elapsed time, and a compiled jar must hold the same
// classes.
func TestWarmVerdictsMatchOneShot(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cfg := activities.DefaultConfig()
	cfg.Image = stk.image
	pool := checkers.New(checkers.Config{
		Size: 1, SpoolDir: filepath.Join(stk.dir, "equivalence-spool"), Prefix: "gradeflow-checker-equivalence-" + randHex(3),
		Timeout: time.Minute, Wait: 3 * time.Minute,
		Start: func(ctx context.Context, name, spool string) (checkers.Conn, error) {
			s, _, err := stk.docker.StartServer(ctx, activities.CheckerSpec(cfg, "equivalence", name, spool, "equivalence-test"), 2*time.Minute)
			if err != nil {
				return nil, err
			}
			return s, nil
		},
	})
	pctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { pool.Run(pctx) })
	defer func() { stop(); wg.Wait() }()
	waitFor(t, 3*time.Minute, "the equivalence checker warm", func() (bool, error) { return pool.Live() >= 1, nil })

	asg := loadAssignment(t)
	var dirs []string
	for _, pattern := range []string{exampleDir + "/submissions/*", "test/testdata/hostile-sandbox/*", "test/testdata/hostile/*"} {
		m, err := filepath.Glob(filepath.Join(stk.root, pattern))
		if err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, m...)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(filepath.Dir(dir))+"/"+filepath.Base(dir), func(t *testing.T) {
			java, _ := filepath.Glob(filepath.Join(dir, "*.java"))
			kind, cmd := checkers.KindPython, []string{"sanity-python"}
			if len(java) > 0 {
				kind, cmd = checkers.KindJava, []string{"compile-java", "--main-class", asg.MainClass}
			}
			cmd = append(cmd, "--forbid", strings.Join(asg.ForbiddenModules, ","))
			resp, err := pool.Check(ctx, checkers.Request{Kind: kind, Dir: dir, Forbid: asg.ForbiddenModules, MainClass: asg.MainClass})
			if err != nil {
				t.Fatalf("warm check: %v", err)
			}
			spec := bareJobSpec(asg, dir, dir)
			spec.Cmd = cmd
			spec.Mounts = spec.Mounts[:1]
			res, err := stk.docker.Run(ctx, spec)
			if err != nil {
				t.Fatal(err)
			}
			files, err := sandbox.ParseTar(res.Stdout, sandbox.TarLimits{MaxEntries: 4, MaxEntryBytes: 32 << 20, MaxTotalBytes: 32 << 20})
			if err != nil {
				t.Fatalf("one-shot output: %v (%s)", err, res.Stderr)
			}
			var oneShot, jar []byte
			for _, f := range files {
				switch f.Name {
				case "result.json":
					oneShot = f.Data
				case "job.jar":
					jar = f.Data
				}
			}
			if w, o := withoutElapsed(t, resp.Result), withoutElapsed(t, oneShot); w != o {
				t.Errorf("verdicts differ:\n warm     %s\n one-shot %s", w, o)
			}
			if w, o := jarClasses(t, resp.Jar), jarClasses(t, jar); w != o {
				t.Errorf("jars differ: warm %s, one-shot %s", w, o)
			}
		})
	}
}

// withoutElapsed is a result.json without its elapsed time, keys sorted.
func withoutElapsed(t *testing.T, raw []byte) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("result.json %q: %v", raw, err)
	}
	delete(m, "elapsed_ms")
	out, _ := json.Marshal(m)
	return string(out)
}

// jarClasses lists a jar's entries with their sizes ("" for no jar).
func jarClasses(t *testing.T, jar []byte) string {
	t.Helper()
	if jar == nil {
		return ""
	}
	z, err := zip.NewReader(bytes.NewReader(jar), int64(len(jar)))
	if err != nil {
		t.Fatalf("jar: %v", err)
	}
	var names []string
	for _, f := range z.File {
		names = append(names, fmt.Sprintf("%s:%d", f.Name, f.UncompressedSize64))
	}
	return strings.Join(names, " ")
}
