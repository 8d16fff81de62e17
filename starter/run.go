package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/intake"
	"github.com/gradeflow/gradeflow/store"
	"github.com/gradeflow/gradeflow/temporalclient"
)

func run(ctx context.Context, cfg Config, args []string, log *zap.Logger) error {
	st, err := store.Open(cfg.Mongo.URI, cfg.Mongo.DB)
	if err != nil {
		return err
	}
	defer func() { _ = st.Close(context.Background()) }()
	tc, err := temporalclient.Dial(ctx, temporalclient.Config{HostPort: cfg.Temporal.Address, Namespace: cfg.Temporal.Namespace}, log)
	if err != nil {
		return err
	}
	defer tc.Close()
	s := &starter{store: st, intake: intake.New(st, tc, intake.Options{AllowPrivateWebhooks: cfg.WebhookPrivate, RuntimeImages: cfg.RuntimeImages, Log: log}), out: os.Stdout, timeout: cfg.Timeout}

	cmd, rest := args[0], args[1:]
	switch cmd {
	case "assignment":
		if len(rest) != 1 {
			return usageError{"assignment takes one directory"}
		}
		a, err := s.putAssignment(ctx, rest[0])
		if err != nil {
			return err
		}
		if len(a.Tests) > 0 {
			fmt.Fprintf(s.out, "assignment %s: %d tests, %s points\n", a.Name, len(a.Tests), strconv.FormatFloat(a.Points, 'f', -1, 64))
			return nil
		}
		fmt.Fprintf(s.out, "assignment %s: %d input files, %d expected files\n", a.Name, len(a.InputFiles), len(a.ExpectedFiles))
		return nil
	case "dataset":
		if len(rest) != 2 {
			return usageError{"dataset takes a name and a file"}
		}
		f, err := os.Open(rest[1])
		if err != nil {
			return fmt.Errorf("open dataset: %w", err)
		}
		defer f.Close()
		d, err := s.intake.PutDataset(ctx, rest[0], f)
		if err != nil {
			return err
		}
		fmt.Fprintf(s.out, "dataset %s: %d bytes, sha256 %s\n", d.Name, d.Size, d.SHA256)
		return nil
	case "regrade-all":
		return s.regradeAllCmd(ctx, rest)
	case "submit":
		return s.submitCmd(ctx, rest)
	case "regrade":
		if len(rest) != 1 {
			return usageError{"regrade takes one submission ID"}
		}
		got, err := s.intake.Regrade(ctx, rest[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(s.out, "regrading %s as %s (workflow %s)\n", got.RegradeOf, got.ID, got.WorkflowID)
		return nil
	case "status":
		if len(rest) != 1 {
			return usageError{"status takes one submission ID"}
		}
		sub, err := st.Submission(ctx, rest[0])
		if err != nil {
			return err
		}
		enc := json.NewEncoder(s.out)
		enc.SetIndent("", "  ")
		return enc.Encode(sub)
	case "examples":
		return s.examplesCmd(ctx, rest)
	default:
		return usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
}

// starter carries the clients of one command.
type starter struct {
	store   *store.Store
	intake  *intake.Service
	out     io.Writer
	timeout time.Duration
}

// putAssignment loads dir/assignment.json, dir/input/ and dir/expected/.
func (s *starter) putAssignment(ctx context.Context, dir string) (contract.Assignment, error) {
	path := filepath.Join(dir, "assignment.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		return contract.Assignment{}, fmt.Errorf("read assignment: %w", err)
	}
	a, err := intake.DecodeAssignment(raw, "")
	if err != nil {
		return contract.Assignment{}, fmt.Errorf("%s: %w", path, err)
	}
	up := intake.AssignmentUpload{Config: a}
	if len(a.Tests) > 0 {
		if up.Files, up.Streams, err = testFiles(dir, a.Tests); err != nil {
			return contract.Assignment{}, err
		}
		stored, _, err := s.intake.PutAssignment(ctx, up)
		if err != nil {
			return contract.Assignment{}, fmt.Errorf("%s: %w", dir, err)
		}
		return stored, nil
	}
	if up.Input, err = readDir(filepath.Join(dir, "input")); err != nil {
		return contract.Assignment{}, err
	}
	if up.Expected, err = readDir(filepath.Join(dir, "expected")); err != nil {
		return contract.Assignment{}, err
	}
	stored, _, err := s.intake.PutAssignment(ctx, up)
	if err != nil {
		return contract.Assignment{}, fmt.Errorf("%s: %w", dir, err)
	}
	return stored, nil
}

func (s *starter) submitCmd(ctx context.Context, args []string) error {
	fset := flag.NewFlagSet("submit", flag.ContinueOnError)
	assignment := fset.String("assignment", "", "assignment name (required)")
	student := fset.String("student", "", "student ID (required)")
	id := fset.String("id", "", "submission ID (default: a new random one)")
	wait := fset.Bool("wait", false, "wait for the grade and print it")
	if err := fset.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if *assignment == "" || *student == "" || fset.NArg() != 1 {
		return usageError{"submit needs -assignment, -student and one directory"}
	}
	files, err := readDir(fset.Arg(0))
	if err != nil {
		return err
	}
	start := time.Now()
	got, err := s.intake.Submit(ctx, intake.Submission{ID: *id, Assignment: *assignment, Student: *student, Files: files})
	if err != nil {
		return err
	}
	if !got.Created {
		fmt.Fprintf(s.out, "submission %s exists already; not graded again\n", got.ID)
	} else {
		fmt.Fprintf(s.out, "submitted %s (workflow %s)\n", got.ID, got.WorkflowID)
	}
	if !*wait {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var res contract.Result
	if err := got.Run.Get(ctx, &res); err != nil {
		return fmt.Errorf("grading %s: %w", got.ID, err)
	}
	fmt.Fprintf(s.out, "%s: %s %s score %g/%g in %.1fs\n%s\n", got.ID, res.Status, res.Outcome, res.Score, res.MaxScore,
		time.Since(start).Seconds(), res.Feedback)
	return nil
}

// expectation is an example's documented outcome, from outcomes.json.
type expectation struct {
	Outcome contract.Outcome  `json:"outcome"`
	Score   *float64          `json:"score,omitempty"`
	Tests   map[string]string `json:"tests,omitempty"` // test name → status
}

// row is one line of the examples table.
type row struct {
	name    string
	id      string
	res     contract.Result
	err     error
	seconds float64
	want    expectation
	ok      bool
	tests   []store.TestResult // per test, from the read model
}

func (s *starter) examplesCmd(ctx context.Context, args []string) error {
	fset := flag.NewFlagSet("examples", flag.ContinueOnError)
	expectFile := fset.String("expect", "", "outcomes file (default DIR/outcomes.json)")
	student := fset.String("student", "example", "student ID to submit as")
	if err := fset.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if fset.NArg() != 1 {
		return usageError{"examples takes one assignment directory"}
	}
	dir := fset.Arg(0)
	if *expectFile == "" {
		*expectFile = filepath.Join(dir, "outcomes.json")
	}
	raw, err := os.ReadFile(*expectFile)
	if err != nil {
		return fmt.Errorf("read outcomes: %w", err)
	}
	var want map[string]expectation
	if err := json.Unmarshal(raw, &want); err != nil {
		return fmt.Errorf("parse %s: %w", *expectFile, err)
	}
	a, err := s.putAssignment(ctx, dir)
	if err != nil {
		return err
	}
	entries, err := os.ReadDir(filepath.Join(dir, "submissions"))
	if err != nil {
		return fmt.Errorf("read submissions: %w", err)
	}
	batch := intake.NewID(time.Now())
	var rows []*row
	for _, e := range entries {
		if e.IsDir() {
			rows = append(rows, &row{name: e.Name(), id: e.Name() + "-" + batch, want: want[e.Name()]})
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, r := range rows {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.grade(ctx, a.Name, *student, filepath.Join(dir, "submissions", r.name), r)
		}()
	}
	wg.Wait()
	sort.Slice(rows, func(i, j int) bool { return rows[i].name < rows[j].name })
	return printTable(s.out, rows)
}

func (s *starter) grade(ctx context.Context, assignment, student, dir string, r *row) {
	files, err := readDir(dir)
	if err != nil {
		r.err = err
		return
	}
	start := time.Now()
	got, err := s.intake.Submit(ctx, intake.Submission{ID: r.id, Assignment: assignment, Student: student, Files: files})
	if err == nil {
		err = got.Run.Get(ctx, &r.res)
	}
	r.err, r.seconds = err, time.Since(start).Seconds()
	r.ok = err == nil && r.res.Outcome == r.want.Outcome && (r.want.Score == nil || *r.want.Score == r.res.Score)
	if err != nil || len(r.want.Tests) == 0 {
		return
	}
	sub, err := s.store.Submission(ctx, r.id)
	if err != nil {
		r.err, r.ok = err, false
		return
	}
	r.tests = sub.Tests
	for _, t := range sub.Tests {
		if want, ok := r.want.Tests[t.Name]; ok && want != t.Status {
			r.ok = false
		}
	}
}

func printTable(out io.Writer, rows []*row) error {
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SUBMISSION\tOUTCOME\tSCORE\tSECONDS\tEXPECTED\t")
	failed := 0
	for _, r := range rows {
		outcome := string(r.res.Outcome)
		if r.err != nil {
			outcome, _, _ = strings.Cut("error: "+r.err.Error(), "\n")
		}
		mark := "ok"
		if !r.ok {
			mark = "MISMATCH"
			failed++
		}
		fmt.Fprintf(tw, "%s\t%s\t%g/%g\t%.1f\t%s %s\t\n", r.name, outcome, r.res.Score, r.res.MaxScore, r.seconds, r.want.Outcome, mark)
		for _, t := range r.tests {
			fmt.Fprintf(tw, "  · %s\t%s\t%g/%g\t%.1f\t%s\t\n", t.Name, t.Status, t.Score, t.MaxScore, t.Seconds, r.want.Tests[t.Name])
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d examples did not reach their documented outcome", failed, len(rows))
	}
	return nil
}

// streamAbove is the size from which the starter streams a file into the
// store instead of reading it whole.
const streamAbove = 8 << 20

// testFiles collects the files under the directories the tests name: small
// ones read, large ones opened one at a time when they are stored.
func testFiles(dir string, tests []contract.TestSpec) (map[string][]byte, map[string]func() (io.ReadCloser, error), error) {
	files := map[string][]byte{}
	streams := map[string]func() (io.ReadCloser, error){}
	seen := map[string]bool{}
	for _, t := range tests {
		for _, sub := range []string{t.Input, t.Expected} {
			if sub == "" || seen[sub] {
				continue
			}
			seen[sub] = true
			if !contract.ValidRelPath(sub) {
				return nil, nil, fmt.Errorf("test %s: directory %q must be relative", t.Name, sub)
			}
			root := filepath.Join(dir, filepath.FromSlash(sub))
			if err := addFiles(dir, root, files, streams); err != nil {
				return nil, nil, fmt.Errorf("read %s: %w", root, err)
			}
		}
	}
	return files, streams, nil
}

// regradeAllCmd plans a regrade of an assignment through the intake (as
// the API does), whose workflow starts the regrades; with -wait it polls
// the report until no regrade is pending, then prints it.
func (s *starter) regradeAllCmd(ctx context.Context, args []string) error {
	fset := flag.NewFlagSet("regrade-all", flag.ContinueOnError)
	assignment := fset.String("assignment", "", "assignment name (required)")
	all := fset.Bool("all", false, "every submission, not only each student's latest")
	wait := fset.Bool("wait", false, "wait for the regrades and print the report")
	id := fset.String("id", "", "run ID (rg-...): repeating the command with it answers the run planned the first time")
	if err := fset.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if *assignment == "" || fset.NArg() != 0 {
		return usageError{"regrade-all needs -assignment"}
	}
	scope := intake.ScopeLatest
	if *all {
		scope = intake.ScopeAll
	}
	rep, err := s.intake.RegradeAll(ctx, intake.RegradeAllRequest{Assignment: *assignment, Scope: scope, ID: *id})
	if err != nil {
		return err
	}
	fmt.Fprintf(s.out, "regrade %s: %d submission(s) of %s (workflow %s)\n", rep.ID, len(rep.Items), rep.Assignment, rep.WorkflowID)
	deadline := time.Now().Add(s.timeout)
	for *wait && len(rep.Pending) > 0 && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
		if rep, err = s.intake.RegradeReport(ctx, rep.ID); err != nil {
			return err
		}
	}
	fmt.Fprintf(s.out, "planned %d, started %d, done %d, failed %d, unchanged %d, changed %d\n",
		rep.Planned, rep.Started, rep.Done, rep.Failed, rep.Unchanged, len(rep.Changed))
	for _, c := range rep.Changed {
		fmt.Fprintf(s.out, "  %-20s %s -> %s  %s/%s -> %s/%s %s\n", c.Student, c.From, c.To,
			strconv.FormatFloat(c.Before, 'f', -1, 64), c.BeforeStatus, strconv.FormatFloat(c.After, 'f', -1, 64), c.AfterStatus, c.Error)
	}
	if *wait && len(rep.Pending) > 0 {
		return fmt.Errorf("%d regrade(s) still pending after %s", len(rep.Pending), s.timeout)
	}
	return nil
}

// readDir reads every regular file under dir, keyed by slash-separated
// relative path. Symlinks are refused: a submission is plain files.
func readDir(dir string) (map[string][]byte, error) {
	files := map[string][]byte{}
	if err := addFiles(dir, dir, files, nil); err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	return files, nil
}

// addFiles adds the regular files under root to files, keyed by their
// slash-separated path relative to base. With streams non-nil, a file
// larger than streamAbove goes there instead, to be opened when it is
// stored.
func addFiles(base, root string, files map[string][]byte, streams map[string]func() (io.ReadCloser, error)) error {
	return walkFiles(root, func(path string, info fs.FileInfo) error {
		rel, err := filepath.Rel(base, path)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if streams != nil && info.Size() > streamAbove {
			streams[key] = func() (io.ReadCloser, error) { return os.Open(path) }
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files[key] = data
		return nil
	})
}

// walkFiles calls fn for every regular file under root, refusing
// symlinks: an assignment or a submission is plain files.
func walkFiles(root string, fn func(path string, info fs.FileInfo) error) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%s: symlinks are not accepted", path)
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return fn(path, info)
	})
}
