//go:build stack

package main

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/gradeflow/gradeflow/store"
	"github.com/gradeflow/gradeflow/test/stacktest"
)

// putAssignment uploads an assignment through the API.
func (e *testEnv) putAssignment(token, name string, parts ...part) response {
	e.t.Helper()
	body, ct := multipartBody(e.t, parts...)
	return e.do(request{method: http.MethodPut, path: "/v1/assignments/" + name, token: token, body: body, contentType: ct})
}

func TestPutAssignment(t *testing.T) {
	e := newEnv(t, nil, nil)
	ctx := context.Background()
	config := `{"title":"Word count","runtimes":["streaming"],"time_limit_seconds":30,"points":10,"webhook_url":"https://hooks.example/grade"}`

	r := e.putAssignment(staffToken, "wc",
		field("config", config),
		file("input", "a.txt", "a b\n"), file("input", "more/b.txt", "b c\n"),
		file("expected", "part-00000", "a\t1\nb\t2\nc\t1\n"))
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	m := r.json(t)
	if m["name"] != "wc" || m["title"] != "Word count" || m["time_limit_seconds"] != 30.0 || m["memory_mb"] != 1024.0 ||
		m["webhook_url"] != "https://hooks.example/grade" || len(m["input_files"].([]any)) != 2 {
		t.Errorf("created %s", r.body)
	}
	a, err := e.store.Assignment(ctx, "wc")
	if err != nil {
		t.Fatal(err)
	}
	wantInputs := []string{store.InputPrefix("wc") + "a.txt", store.InputPrefix("wc") + "more/b.txt"}
	if strings.Join(a.InputFiles, ",") != strings.Join(wantInputs, ",") || a.Points != 10 || a.WebhookURL == "" {
		t.Errorf("stored %+v", a)
	}

	// Replace: fewer input files; the stale one goes.
	r = e.putAssignment(staffToken, "wc", field("config", `{"points":20}`),
		file("input", "a.txt", "new\n"), file("expected", "part-00000", "new\t1\n"))
	if r.status != http.StatusOK {
		t.Fatalf("replace: %d %s", r.status, r.body)
	}
	files, err := stacktest.Files(ctx, e.store.DB(), store.FilesBucket, store.InputPrefix("wc"))
	if err != nil || len(files) != 1 {
		t.Errorf("input files after replace: %v %v", files, err)
	}
	if data, err := e.store.ReadFile(ctx, store.InputPrefix("wc")+"a.txt", 100); err != nil || string(data) != "new\n" {
		t.Errorf("replaced input %q %v", data, err)
	}

	if r := e.get(staffToken, "/v1/assignments/wc"); r.status != http.StatusOK || r.json(t)["points"] != 20.0 {
		t.Errorf("get: %d %s", r.status, r.body)
	}
	wantError(t, e.get(staffToken, "/v1/assignments/nope"), http.StatusNotFound, codeNotFound, "")
	e.seedAssignment("pi", "")
	r = e.get(staffToken, "/v1/assignments")
	if r.status != http.StatusOK {
		t.Fatalf("list: %d", r.status)
	}
	list := r.json(t)["assignments"].([]any)
	if len(list) != 2 || list[0].(map[string]any)["name"] != "pi" || list[1].(map[string]any)["name"] != "wc" {
		t.Errorf("list %s", r.body)
	}
	wantError(t, e.putAssignment(portalToken, "wc", field("config", "{}")), http.StatusForbidden, codeForbidden, "")
}

// TestPutAssignmentRejects checks that bad uploads name what is wrong and
// store nothing.
func TestPutAssignmentRejects(t *testing.T) {
	cfg := testConfig()
	cfg.MaxAssignment = 64 << 10
	e := newEnv(t, &cfg, nil)
	in, exp := file("input", "a.txt", "x"), file("expected", "part-00000", "x")
	tests := []struct {
		name   string
		parts  []part
		status int
		code   string
		field  string
	}{
		{"missing config", []part{in, exp}, 400, codeMissingField, "config"},
		{"missing input", []part{field("config", "{}"), exp}, 400, codeMissingField, "input"},
		{"missing expected", []part{field("config", "{}"), in}, 400, codeMissingField, "expected"},
		{"malformed json", []part{field("config", `{"points":`), in, exp}, 400, codeMalformed, "config"},
		{"trailing json", []part{field("config", `{} {}`), in, exp}, 400, codeInvalidField, "config"},
		{"wrong type", []part{field("config", `{"points":"many"}`), in, exp}, 400, codeInvalidField, "points"},
		{"unknown field", []part{field("config", `{"pionts":3}`), in, exp}, 400, codeInvalidField, "pionts"},
		{"name in config", []part{field("config", `{"name":"other"}`), in, exp}, 400, codeInvalidField, "name"},
		{"files in config", []part{field("config", `{"input_files":["x"]}`), in, exp}, 400, codeInvalidField, "input_files"},
		{"time limit", []part{field("config", `{"time_limit_seconds":5000}`), in, exp}, 400, codeInvalidField, "time_limit_seconds"},
		{"memory", []part{field("config", `{"memory_mb":1}`), in, exp}, 400, codeInvalidField, "memory_mb"},
		{"compare", []part{field("config", `{"compare":"fuzzy"}`), in, exp}, 400, codeInvalidField, "compare"},
		{"runtime", []part{field("config", `{"runtimes":["cobol"]}`), in, exp}, 400, codeInvalidField, "runtimes"},
		{"mapper path", []part{field("config", `{"mapper":"../m.py"}`), in, exp}, 400, codeInvalidField, "mapper"},
		{"webhook scheme", []part{field("config", `{"webhook_url":"ftp://x/y"}`), in, exp}, 400, codeInvalidField, "webhook_url"},
		{"webhook relative", []part{field("config", `{"webhook_url":"/hook"}`), in, exp}, 400, codeInvalidField, "webhook_url"},
		{"unsafe input name", []part{field("config", "{}"), file("input", "../x", "x"), exp}, 400, codeUnsafePath, "input"},
		{"unknown part", []part{field("config", "{}"), in, exp, file("extra", "x", "x")}, 400, codeInvalidField, "extra"},
		{"too large", []part{field("config", "{}"), file("input", "big", strings.Repeat("x", 200<<10)), exp}, 413, codeTooLarge, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, e.putAssignment(staffToken, "fresh", tt.parts...), tt.status, tt.code, tt.field)
			wantNoAssignment(t, e, "fresh")
		})
	}
	t.Run("bad name", func(t *testing.T) {
		wantError(t, e.putAssignment(staffToken, "Bad.Name", field("config", "{}"), in, exp), 400, codeInvalidField, "name")
		wantNoAssignment(t, e, "Bad.Name")
	})
}

func wantNoAssignment(t *testing.T, e *testEnv, name string) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.store.Assignment(ctx, name); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("assignment %s stored (err %v)", name, err)
	}
	for _, prefix := range []string{store.InputPrefix(name), store.ExpectedPrefix(name)} {
		if files, err := stacktest.Files(ctx, e.store.DB(), store.FilesBucket, prefix); err != nil || len(files) > 0 {
			t.Errorf("files left under %s: %v %v", prefix, files, err)
		}
	}
}

// TestPutAssignmentTests: the tests form over the API. Files come as
// `files` parts of the assignment's directory; each is stored once by
// content; a dataset is resolved by name; errors name the test's field.
func TestPutAssignmentTests(t *testing.T) {
	e := newEnv(t, nil, nil)
	ctx := context.Background()
	r := e.do(request{method: http.MethodPut, path: "/v1/datasets/words", token: staffToken,
		body: strings.NewReader("a b a\n"), contentType: "application/octet-stream"})
	if r.status != http.StatusOK || r.json(t)["sha256"] == "" {
		t.Fatalf("put dataset: %d %s", r.status, r.body)
	}
	config := `{"runtimes":["streaming"],"due_at":"2027-01-15T23:59:00Z","tests":[
		{"name":"small","points":30,"visibility":"visible","input":"t/in","expected":"t/out"},
		{"name":"again","points":30,"visibility":"hidden","input":"t/in","expected":"t/out","reducers":3},
		{"name":"big","points":40,"visibility":"after_due","dataset":"words","expected":"t/out",
		 "counters":[{"counter":"COMBINE_INPUT_RECORDS","op":">","value":0}]}]}`
	r = e.putAssignment(staffToken, "tw", field("config", config),
		file("files", "t/in/a.txt", "a b a\n"), file("files", "t/out/part-00000", "a\t2\nb\t1\n"))
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	a, err := e.store.Assignment(ctx, "tw")
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Tests) != 3 || a.Points != 100 || a.DueAt == nil {
		t.Fatalf("stored %+v", a)
	}
	small, again, big := a.Tests[0], a.Tests[1], a.Tests[2]
	if small.InputFiles[0].Name != "a.txt" || small.InputFiles[0].Blob != again.InputFiles[0].Blob ||
		big.InputFiles[0].SHA256 != small.InputFiles[0].SHA256 || big.InputFiles[0].Name != "words" || again.Reducers != 3 {
		t.Errorf("files not resolved and shared by content: %+v", a.Tests)
	}
	for _, tc := range []struct {
		name, config, field string
		parts               []part
	}{
		{"unknown dataset", `{"tests":[{"name":"x","points":1,"dataset":"nope","expected":"t/out"}]}`, "tests[0].dataset",
			[]part{file("files", "t/out/p", "x\n")}},
		{"no expected files", `{"tests":[{"name":"x","points":1,"input":"t/in","expected":"t/none"}]}`, "tests[0].expected",
			[]part{file("files", "t/in/a", "x\n")}},
		{"bad visibility", `{"tests":[{"name":"x","points":1,"visibility":"secret","input":"t/in","expected":"t/in"}]}`, "tests[0].visibility",
			[]part{file("files", "t/in/a", "x\n")}},
		{"image off the list", `{"image":"evil/miner:1","tests":[{"name":"x","points":1,"input":"t/in","expected":"t/in"}]}`, "image",
			[]part{file("files", "t/in/a", "x\n")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.putAssignment(staffToken, "bad", append([]part{field("config", tc.config)}, tc.parts...)...)
			if r.status != http.StatusBadRequest || r.json(t)["field"] != tc.field {
				t.Errorf("%d %s, want 400 on %s", r.status, r.body, tc.field)
			}
		})
	}
	if _, err := e.store.Assignment(ctx, "bad"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused upload left an assignment: %v", err)
	}
}
