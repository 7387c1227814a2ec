package cometchat

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Error codes the client and its callers act on. CometChat's error guide
// lists more; anything else is handled by its HTTP status class.
const (
	CodeGUIDAlreadyExists = "ERR_GUID_ALREADY_EXISTS"
	CodeGUIDNotFound      = "ERR_GUID_NOT_FOUND"
	CodeTooManyRequests   = "ERR_TOO_MANY_REQUESTS"
	CodeException         = "ERR_EXCEPTION"
	CodeBadRequest        = "ERR_BAD_REQUEST"
	// CodeNoRowResult is ours: the import answer had no entry for a guid we sent.
	CodeNoRowResult = "COMETSYNC_NO_ROW_RESULT"
	// CodeUnreadableRowResult is ours: a per-row result we could not interpret.
	CodeUnreadableRowResult = "COMETSYNC_UNREADABLE_ROW_RESULT"
)

// APIError is a request CometChat (or the network on the way) did not
// answer with success. It is built once, in the client, from the HTTP status
// and the `error.code` of the body; callers decide with Retryable, Auth and
// errors.As, never by matching the message.
type APIError struct {
	Endpoint   string        // "import", "update", "delete", "get"
	Method     string        // HTTP method
	Status     int           // HTTP status; 0 when no answer arrived
	Code       string        // CometChat's error code, e.g. ERR_GUID_NOT_FOUND; "" when none was given
	Message    string        // CometChat's message, or a description of the transport failure
	RetryAfter time.Duration // what Retry-After / X-RateLimit-Reset asked for, 0 when absent
	Attempts   int           // how many times the request was sent
	Err        error         // the transport error when Status is 0
}

// Error describes the failure for people, without any secret. It never
// ends with a period, even when CometChat's message is a sentence that
// does: callers wrap it in sentences of their own.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cometchat %s", e.Endpoint)
	msg := strings.TrimRight(e.Message, ". \t\r\n")
	switch {
	case e.Status == 0:
		fmt.Fprintf(&b, ": no answer: %s", msg)
	default:
		fmt.Fprintf(&b, ": HTTP %d", e.Status)
		if e.Code != "" {
			fmt.Fprintf(&b, " %s", e.Code)
		}
		if msg != "" {
			fmt.Fprintf(&b, ": %s", msg)
		}
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " (after %d attempts)", e.Attempts)
	}
	return b.String()
}

// Unwrap returns the transport error, if any.
func (e *APIError) Unwrap() error { return e.Err }

// Auth reports whether the API refused the credentials: the whole run must
// stop, retrying or moving to the next row cannot help.
func (e *APIError) Auth() bool {
	return strings.HasPrefix(e.Code, "AUTH_ERR") || e.Status == 401 || e.Status == 403
}

// RateLimited reports whether this is CometChat's rate limit answer.
func (e *APIError) RateLimited() bool {
	return e.Status == 429 || e.Code == CodeTooManyRequests
}

// Retryable reports whether sending the same request again may succeed:
// rate limits, server errors, and requests that got no answer at all.
func (e *APIError) Retryable() bool {
	if e.Auth() {
		return false
	}
	return e.Status == 0 || e.RateLimited() || e.Status >= 500
}

// IsAuth reports whether err is an APIError that refused the credentials.
func IsAuth(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Auth()
}
