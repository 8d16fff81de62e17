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
		fmt.Fprintf(s.out, "assignment %s: %d input files, %d expected files\n", a.Name, len(a.InputFiles), len(a.ExpectedFiles))
		return nil
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
	Outcome contract.Outcome `json:"outcome"`
	Score   *float64         `json:"score,omitempty"`
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
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d examples did not reach their documented outcome", failed, len(rows))
	}
	return nil
}

// readDir reads every regular file under dir, keyed by slash-separated
// relative path. Symlinks are refused: a submission is plain files.
func readDir(dir string) (map[string][]byte, error) {
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%s: symlinks are not accepted", path)
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)] = data
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	return files, nil
}
