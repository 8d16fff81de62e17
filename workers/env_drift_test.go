package main

import (
	"testing"

	"github.com/gradeflow/gradeflow/test/deployenv"
)

// TestDeployEnvNamesAreRead checks that every environment variable the
// compose files and Kubernetes manifests give this program is one its
// config loader reads: a renamed or misspelt variable is otherwise
// silently ignored.
func TestDeployEnvNamesAreRead(t *testing.T) {
	read := map[string]bool{}
	_, _ = loadConfig(nil, func(name string) (string, bool) { read[name] = true; return "", false })
	drift, err := deployenv.Drift("..", deployenv.Worker, read)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range drift {
		t.Errorf("set for the %s but not read by it: %s", deployenv.Worker, d)
	}
}
