package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
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

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/gradeflow/gradeflow/store"
	"github.com/gradeflow/gradeflow/workflows"
)

func run(ctx context.Context, cfg Config, args []string, log *zap.Logger) error {
	st, err := store.Open(cfg.MongoURI, cfg.MongoDB)
	if err != nil {
		return err
	}
	defer func() { _ = st.Close(context.Background()) }()
	tc, err := workflows.Dial(ctx, workflows.ClientConfig{HostPort: cfg.TemporalAddress, Namespace: cfg.TemporalNamespace}, log)
	if err != nil {
		return err
	}
	defer tc.Close()
	s := &starter{store: st, temporal: tc, out: os.Stdout, timeout: cfg.Timeout}

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
	store    *store.Store
	temporal client.Client
	out      io.Writer
	timeout  time.Duration
}

// putAssignment loads dir/assignment.json, dir/input/ and dir/expected/.
func (s *starter) putAssignment(ctx context.Context, dir string) (store.Assignment, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "assignment.json"))
	if err != nil {
		return store.Assignment{}, fmt.Errorf("read assignment: %w", err)
	}
	var a store.Assignment
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return store.Assignment{}, fmt.Errorf("parse %s: %w", filepath.Join(dir, "assignment.json"), err)
	}
	a.Defaults()
	if err := a.Validate(); err != nil {
		return store.Assignment{}, fmt.Errorf("assignment.json: %w", err)
	}
	for sub, prefix := range map[string]string{"input": store.InputPrefix(a.Name), "expected": store.ExpectedPrefix(a.Name)} {
		files, err := readDir(filepath.Join(dir, sub))
		if err != nil {
			return store.Assignment{}, err
		}
		if err := s.store.DeletePrefix(ctx, prefix); err != nil {
			return store.Assignment{}, err
		}
		for name, data := range files {
			if err := s.store.PutFile(ctx, prefix+name, data); err != nil {
				return store.Assignment{}, err
			}
		}
	}
	if err := s.store.PutAssignment(ctx, a); err != nil {
		return store.Assignment{}, err
	}
	return s.store.Assignment(ctx, a.Name)
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
	if *id == "" {
		*id = newID()
	}
	files, err := readDir(fset.Arg(0))
	if err != nil {
		return err
	}
	start := time.Now()
	run, created, err := workflows.Submit(ctx, s.temporal, s.store, workflows.NewSubmission{
		ID: *id, Assignment: *assignment, Student: *student, Files: files,
	})
	if err != nil {
		return err
	}
	if !created {
		fmt.Fprintf(s.out, "submission %s exists already; not graded again\n", *id)
	} else {
		fmt.Fprintf(s.out, "submitted %s (workflow %s)\n", *id, run.GetID())
	}
	if !*wait {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var res workflows.Result
	if err := run.Get(ctx, &res); err != nil {
		return fmt.Errorf("grading %s: %w", *id, err)
	}
	fmt.Fprintf(s.out, "%s: %s %s score %g/%g in %.1fs\n%s\n", *id, res.Status, res.Outcome, res.Score, res.MaxScore,
		time.Since(start).Seconds(), res.Feedback)
	return nil
}

// expectation is an example's documented outcome, from outcomes.json.
type expectation struct {
	Outcome store.Outcome `json:"outcome"`
	Score   *float64      `json:"score,omitempty"`
}

// row is one line of the examples table.
type row struct {
	name    string
	id      string
	res     workflows.Result
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
	batch := newID()
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
	run, _, err := workflows.Submit(ctx, s.temporal, s.store, workflows.NewSubmission{
		ID: r.id, Assignment: assignment, Student: student, Files: files,
	})
	if err == nil {
		err = run.Get(ctx, &r.res)
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
			outcome = "error: " + firstLine(r.err.Error())
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

func newID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return time.Now().UTC().Format("20060102t150405") + "-" + hex.EncodeToString(b)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
