package temporalclient

import "testing"

func TestSnakeCase(t *testing.T) {
	tests := []struct{ in, want string }{
		{in: "WorkflowID", want: "workflow_id"},
		{in: "TaskQueue", want: "task_queue"},
		{in: "Namespace", want: "namespace"},
		{in: "RunID", want: "run_id"},
		{in: "ActivityType", want: "activity_type"},
		{in: "HTTPStatus", want: "http_status"},
		{in: "submission_id", want: "submission_id"},
		{in: "Attempt2Count", want: "attempt2_count"},
		{in: "", want: ""},
	}
	for _, tt := range tests {
		if got := SnakeCase(tt.in); got != tt.want {
			t.Errorf("SnakeCase(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
