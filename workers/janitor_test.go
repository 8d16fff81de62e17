package main

import (
	"testing"

	"github.com/gradeflow/gradeflow/docker/sandbox"
)

func TestJanitorJudgesOnlyItsOwnStack(t *testing.T) {
	j := &janitor{namespaceID: "ns-1"}
	tests := []struct {
		name   string
		labels map[string]string
		want   bool
	}{
		{name: "same namespace", labels: map[string]string{sandbox.LabelNamespace: "ns-1"}, want: true},
		{name: "another stack's namespace", labels: map[string]string{sandbox.LabelNamespace: "ns-2"}, want: false},
		{name: "empty namespace label is another stack's", labels: map[string]string{sandbox.LabelNamespace: ""}, want: false},
		{name: "unlabelled container predates the label", labels: map[string]string{}, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := j.ours(tt.labels); got != tt.want {
				t.Errorf("ours(%v) = %v, want %v", tt.labels, got, tt.want)
			}
		})
	}
}
