package deployenv

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/gradeflow/gradeflow/contract"
)

// TestTemporalImageRegistersContractAttributes checks that the Temporal
// image registers, and its health check waits for, exactly the search
// attributes the workflows set (contract.SearchAttributeNames).
func TestTemporalImageRegistersContractAttributes(t *testing.T) {
	want := slices.Sorted(slices.Values(contract.SearchAttributeNames))
	list := regexp.MustCompile(`(?m)^\s*(?:attributes=\(|for a in )([A-Za-z0-9 ]+)`)
	for _, f := range []string{"register.sh", "ready.sh"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "deploy/images/temporal", f))
		if err != nil {
			t.Fatal(err)
		}
		m := list.FindSubmatch(b)
		if m == nil {
			t.Fatalf("%s: no attribute list found", f)
		}
		got := slices.Sorted(slices.Values(regexp.MustCompile(`\S+`).FindAllString(string(m[1]), -1)))
		if !slices.Equal(got, want) {
			t.Errorf("%s registers %v, the contract has %v", f, got, want)
		}
	}
}
