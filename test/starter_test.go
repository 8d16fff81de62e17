//go:build stack

package test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gradeflow/gradeflow/store"
	"github.com/gradeflow/gradeflow/test/stacktest"
)

// TestStarter drives the starter binary through the intake it shares with
// the API: submit and wait, regrade, and an assignment upload that is
// refused as a whole (a bad webhook URL) and stores nothing.
func TestStarter(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	id := "starter-" + randHex(3)
	dir := filepath.Join(exampleDir, "submissions/python-correct")
	out, err := stk.starter(ctx, "submit", "-assignment", "wordcount", "-student", "cli", "-id", id, "-wait", dir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, id+": graded passed score 100/100") {
		t.Errorf("submit output:\n%s", out)
	}
	out, err = stk.starter(ctx, "submit", "-assignment", "wordcount", "-student", "cli", "-id", id, dir)
	if err != nil || !strings.Contains(out, "exists already") {
		t.Errorf("second submit of %s: %v\n%s", id, err, out)
	}
	if _, err := stk.starter(ctx, "submit", "-assignment", "wordcount", "-student", "someone-else", "-id", id, dir); err == nil {
		t.Error("another student's submit of a taken ID was accepted")
	}

	out, err = stk.starter(ctx, "regrade", id)
	if err != nil || !strings.Contains(out, "as "+id+"-r1") {
		t.Fatalf("regrade: %v\n%s", err, out)
	}
	res, err := awaitResult(ctx, id+"-r1")
	if err != nil || res.Outcome != "passed" {
		t.Fatalf("regrade graded %+v, %v", res, err)
	}
	if sub, err := stk.store.Submission(ctx, id+"-r1"); err != nil || sub.RegradeOf != id {
		t.Errorf("regrade document %+v, %v", sub, err)
	}

	bad := t.TempDir()
	raw, err := os.ReadFile(filepath.Join(stk.root, exampleDir, "assignment.json"))
	if err != nil {
		t.Fatal(err)
	}
	name := "starter-bad-" + randHex(3)
	cfg := strings.Replace(string(raw), `"name": "wordcount"`, `"name": "`+name+`", "webhook_url": "ftp://hooks.example/x"`, 1)
	for sub, file := range map[string]string{"input/a.txt": "a b\n", "expected/part-00000": "a\t1\nb\t1\n"} {
		p := filepath.Join(bad, sub)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(file), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(bad, "assignment.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = stk.starter(ctx, "assignment", bad)
	if err == nil || !strings.Contains(out, "webhook_url") {
		t.Errorf("bad webhook URL: %v\n%s", err, out)
	}
	if _, err := stk.store.Assignment(ctx, name); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("refused assignment stored: %v", err)
	}
	for _, prefix := range []string{store.InputPrefix(name), store.ExpectedPrefix(name)} {
		if files, err := stacktest.Files(ctx, stk.store.DB(), store.FilesBucket, prefix); err != nil || len(files) > 0 {
			t.Errorf("files of a refused assignment: %v %v", files, err)
		}
	}
}
