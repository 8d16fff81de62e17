package activities

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/gradeflow/gradeflow/docker/sandbox"
)

// runResult is result.json, which the runtime image's runner writes into the
// tar stream it prints on stdout when it finishes.
type runResult struct {
	OK        bool         `json:"ok"`
	Kind      string       `json:"kind"`
	ExitCode  int          `json:"exit_code"`
	Message   string       `json:"message"`
	Errors    []checkError `json:"errors"`
	ElapsedMS int64        `json:"elapsed_ms"`
	TimedOut  bool         `json:"timed_out"`
}

// checkError is one problem found by a sanity check.
type checkError struct {
	File     string `json:"file"`
	Line     int    `json:"line"`
	Col      int    `json:"col"`
	Message  string `json:"message"`
	Category string `json:"category"` // "syntax" or "forbidden_import"
}

func (e checkError) String() string {
	loc := e.File
	if e.Line > 0 {
		loc += fmt.Sprintf(":%d", e.Line)
		if e.Col > 0 {
			loc += fmt.Sprintf(":%d", e.Col)
		}
	}
	if loc == "" {
		return e.Message
	}
	return loc + ": " + e.Message
}

// bundle is the parsed stdout of a runtime container.
type bundle struct {
	result *runResult
	files  map[string][]byte // every other regular file, by tar path
}

var errNoResult = errors.New("container wrote no result.json")

// maxResultJSON caps result.json: the runner's messages are a few KB.
const maxResultJSON = 256 << 10

// parseBundle reads the tar stream a runtime container printed, within
// limits checked while reading (sandbox.ParseTar): at most maxFiles
// entries and maxBytes of file data, no sparse or extension headers. The
// files alias stdout.
func parseBundle(stdout []byte, maxFiles int, maxBytes int64) (bundle, error) {
	b := bundle{files: map[string][]byte{}}
	files, err := sandbox.ParseTar(stdout, sandbox.TarLimits{MaxEntries: maxFiles + 8, MaxEntryBytes: maxBytes, MaxTotalBytes: maxBytes})
	if err != nil {
		return b, fmt.Errorf("read container output: %w", err)
	}
	for _, f := range files {
		if _, dup := b.files[f.Name]; dup || (f.Name == "result.json" && b.result != nil) {
			return b, fmt.Errorf("read container output: %w: %s twice", sandbox.ErrUnsafeTar, f.Name)
		}
		if f.Name == "result.json" {
			if len(f.Data) > maxResultJSON {
				return b, fmt.Errorf("read container output: result.json is %d bytes", len(f.Data))
			}
			var r runResult
			if err := json.Unmarshal(f.Data, &r); err != nil {
				return b, fmt.Errorf("parse result.json: %w", err)
			}
			b.result = &r
			continue
		}
		b.files[f.Name] = f.Data
	}
	if b.result == nil {
		return b, errNoResult
	}
	return b, nil
}
