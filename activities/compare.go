package activities

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/gradeflow/gradeflow/contract"
)

// Compare checks a job's output against the assignment's expected output
// and scores it.
func (a *Activities) Compare(ctx context.Context, in contract.CompareInput) (contract.Grade, error) {
	// No stage write here: comparing takes milliseconds, and the workflow's
	// stage query and search attribute already show it.
	if len(in.Execution.Tests) > 0 { // scored test by test as each finished
		return gradeTests(in.Execution), nil
	}
	expected, err := a.expected.get(ctx, a, in.Plan.Config)
	if err != nil {
		return contract.Grade{}, err
	}
	got, err := a.concat(ctx, in.Execution.Outputs, a.Config.MaxOutput)
	if err != nil {
		return contract.Grade{}, err
	}
	cfg := in.Plan.Config
	g := Score(expected, got, cfg.Compare, cfg.Points, cfg.ShowExpected)
	g.Grader = in.Execution.Grader
	return g, nil
}

func (a *Activities) concat(ctx context.Context, names []string, max int64) ([]byte, error) {
	var buf bytes.Buffer
	for _, n := range names {
		data, err := a.Files.ReadFile(ctx, n, max-int64(buf.Len()))
		if err != nil {
			return nil, err
		}
		buf.Write(data)
		if len(data) > 0 && data[len(data)-1] != '\n' {
			buf.WriteByte('\n')
		}
	}
	return buf.Bytes(), nil
}

// Normalize splits output into lines with whitespace runs collapsed to one
// space and the ends trimmed, drops blank lines, and sorts them: the order
// of a MapReduce job's output depends on its partitioning, not on the
// student's logic.
func Normalize(data []byte) []string {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		if l := strings.Join(strings.Fields(sc.Text()), " "); l != "" {
			lines = append(lines, l)
		}
	}
	sort.Strings(lines)
	return lines
}

// diffLimit caps the lines of the diff excerpt shown to the student.
const diffLimit = 10

// Score compares expected and actual output as multisets of normalized
// lines. In sorted-lines mode the score is points × matched / max(expected,
// got) lines, so both missing and extra lines cost; in exact mode it is all
// or nothing. With showLines, the diff excerpt lists the first missing (-)
// and unexpected (+) lines; without it, feedback gives only the counts.
func Score(expected, got []byte, mode string, points float64, showLines bool) contract.Grade {
	exp, act := Normalize(expected), Normalize(got)
	var missing, extra []string
	matched := 0
	i, j := 0, 0
	for i < len(exp) || j < len(act) {
		switch {
		case j >= len(act) || (i < len(exp) && exp[i] < act[j]):
			missing = append(missing, exp[i])
			i++
		case i >= len(exp) || act[j] < exp[i]:
			extra = append(extra, act[j])
			j++
		default:
			matched++
			i++
			j++
		}
	}
	pass := len(missing) == 0 && len(extra) == 0
	score := 0.0
	switch {
	case pass:
		score = points
	case mode != contract.CompareExact:
		denom := max(len(exp), len(act))
		score = math.Floor(points*float64(matched)/float64(denom)*100) / 100
	}
	test := contract.TestResult{
		Name: "output", Passed: pass, Score: score, MaxScore: points,
		Expected: len(exp), Matched: matched, Got: len(act),
	}
	if showLines {
		test.Diff = diffExcerpt(missing, extra)
	}
	g := contract.Grade{Score: score, MaxScore: points, Tests: []contract.TestResult{test}}
	if pass {
		g.Outcome = contract.OutcomePassed
		g.Feedback = fmt.Sprintf("all %d output lines match", len(exp))
		return g
	}
	g.Outcome = contract.OutcomeWrongAnswer
	g.Feedback = fmt.Sprintf("%d of %d expected lines match; %d missing, %d unexpected", matched, len(exp), len(missing), len(extra))
	if test.Diff != "" {
		g.Feedback += "\n" + test.Diff
	}
	return g
}

func diffExcerpt(missing, extra []string) string {
	var sb strings.Builder
	write := func(prefix string, lines []string) {
		for k, l := range lines {
			if k == diffLimit {
				fmt.Fprintf(&sb, "%s … %d more\n", prefix, len(lines)-diffLimit)
				return
			}
			sb.WriteString(prefix + " " + truncate(l, 200) + "\n")
		}
	}
	write("-", missing)
	write("+", extra)
	return strings.TrimSuffix(sb.String(), "\n")
}
