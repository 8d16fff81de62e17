package deployenv

import (
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// fairnessKeys are the dynamic-config keys that fair dispatch, and the
// dispatch model the API's positions and the prefetcher follow (package
// dispatch), depend on: the priority-aware matcher, fairness and its
// per-key counter, one task-queue partition (one backlog, one order) and
// the queue processors' poll rates.
var fairnessKeys = []string{
	"matching.useNewMatcher",
	"matching.enableFairness",
	"matching.fairnessCounter",
	"matching.numTaskqueueReadPartitions",
	"matching.numTaskqueueWritePartitions",
	"history.transferProcessorMaxPollRPS",
	"history.timerProcessorMaxPollRPS",
}

// devServerConfig reads the --dynamic-config-value settings of
// deploy/dev/temporal.sh with fairness on (GRADEFLOW_FAIRNESS's default),
// each value parsed as the CLI parses it (JSON).
func devServerConfig(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "dev", "temporal.sh"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	flag := regexp.MustCompile(`--dynamic-config-value\s+(?:'([^']*)'|"([^"]*)"|(\S+))`)
	for _, m := range flag.FindAllStringSubmatch(string(b), -1) {
		kv := m[1] + m[2] + m[3]
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			t.Fatalf("temporal.sh: %q is not KEY=VALUE", kv)
		}
		var val any
		if err := yaml.Unmarshal([]byte(v), &val); err != nil {
			t.Fatalf("temporal.sh: %s: value %q: %v", k, v, err)
		}
		if _, dup := out[k]; dup {
			t.Errorf("temporal.sh sets %s twice", k)
		}
		out[k] = val
	}
	return out
}

// imageConfig reads the compose Temporal image's dynamic config: each
// key's first (unconstrained) value.
func imageConfig(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "images", "temporal", "config", "dynamicconfig", "gradeflow.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string][]struct {
		Value       any            `yaml:"value"`
		Constraints map[string]any `yaml:"constraints"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("gradeflow.yaml: %v", err)
	}
	out := map[string]any{}
	for k, vs := range doc {
		if len(vs) != 1 || len(vs[0].Constraints) > 0 {
			t.Errorf("gradeflow.yaml: %s has %d values or constraints; the dev server sets one for all", k, len(vs))
			continue
		}
		out[k] = vs[0].Value
	}
	return out
}

// TestTemporalConfigsAgree checks that the compose deployment's Temporal
// server (deploy/images/temporal/config/dynamicconfig/gradeflow.yaml) is
// tuned as the dev server of make run and the tests (deploy/dev/temporal.sh,
// fairness on): the same keys with the same values, the fairness keys
// among them. The dispatch model is tested against the dev server only,
// so a compose server that differs would dispatch in another order than
// the API reports.
func TestTemporalConfigsAgree(t *testing.T) {
	dev, image := devServerConfig(t), imageConfig(t)
	for _, k := range fairnessKeys {
		if _, ok := dev[k]; !ok {
			t.Errorf("temporal.sh does not set %s", k)
		}
		if _, ok := image[k]; !ok {
			t.Errorf("gradeflow.yaml does not set %s", k)
		}
	}
	keys := map[string]bool{}
	for k := range dev {
		keys[k] = true
	}
	for k := range image {
		keys[k] = true
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		d, inDev := dev[k]
		i, inImage := image[k]
		switch {
		case !inDev:
			t.Errorf("%s: gradeflow.yaml sets %v, temporal.sh does not set it", k, i)
		case !inImage:
			t.Errorf("%s: temporal.sh sets %v, gradeflow.yaml does not set it", k, d)
		case !reflect.DeepEqual(d, i):
			t.Errorf("%s: temporal.sh sets %#v, gradeflow.yaml %#v", k, d, i)
		}
	}
	// The programs read GRADEFLOW_FAIRNESS=on by default: the compose
	// server must dispatch fairly.
	if image["matching.enableFairness"] != true || image["matching.useNewMatcher"] != true {
		t.Errorf("gradeflow.yaml: fairness %v, new matcher %v; the API and workers model fair dispatch by default",
			image["matching.enableFairness"], image["matching.useNewMatcher"])
	}
}
