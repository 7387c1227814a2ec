package cometchat_test

import (
	"testing"

	"github.com/cometsync/cometsync/internal/cometchat"
)

// CometChat's messages are often sentences with a final period; callers
// wrap the error in sentences of their own ("...: %v. Check ..."), so its
// text must not end with one.
func TestAPIErrorTextEndsWithoutAPeriod(t *testing.T) {
	tests := []struct {
		name string
		err  *cometchat.APIError
		want string
	}{
		{"a sentence", &cometchat.APIError{Endpoint: "get", Status: 401, Code: "AUTH_ERR_APIKEY_NOT_FOUND", Message: "The API key is invalid."},
			"cometchat get: HTTP 401 AUTH_ERR_APIKEY_NOT_FOUND: The API key is invalid"},
		{"a sentence and a newline, retried", &cometchat.APIError{Endpoint: "import", Status: 500, Code: "ERR_EXCEPTION", Message: "Something went wrong.\n", Attempts: 3},
			"cometchat import: HTTP 500 ERR_EXCEPTION: Something went wrong (after 3 attempts)"},
		{"only a period", &cometchat.APIError{Endpoint: "update", Status: 403, Message: "."},
			"cometchat update: HTTP 403"},
		{"no answer", &cometchat.APIError{Endpoint: "delete", Message: "connection refused."},
			"cometchat delete: no answer: connection refused"},
		{"no period", &cometchat.APIError{Endpoint: "get", Status: 404, Code: "ERR_GUID_NOT_FOUND", Message: "no group team-1"},
			"cometchat get: HTTP 404 ERR_GUID_NOT_FOUND: no group team-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}
