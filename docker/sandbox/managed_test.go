package sandbox

import "testing"

func TestOfNamespace(t *testing.T) {
	tests := []struct {
		name   string
		labels map[string]string
		want   bool
	}{
		{name: "same namespace", labels: map[string]string{LabelNamespace: "ns-1"}, want: true},
		{name: "another stack's namespace", labels: map[string]string{LabelNamespace: "ns-2"}, want: false},
		{name: "empty namespace label is another stack's", labels: map[string]string{LabelNamespace: ""}, want: false},
		{name: "unlabelled container predates the label", labels: map[string]string{}, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (Managed{Labels: tt.labels}).OfNamespace("ns-1"); got != tt.want {
				t.Errorf("OfNamespace(%v) = %v, want %v", tt.labels, got, tt.want)
			}
		})
	}
}
