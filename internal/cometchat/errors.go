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
	CodeGUIDAlreadyExists       = "ERR_GUID_ALREADY_EXISTS"
	CodeUIDAlreadyExists        = "ERR_UID_ALREADY_EXISTS"
	CodeMemberIDAlreadyExists   = "ERR_IMPORT_MUID_ALREADY_EXISTS"
	CodeAlreadyJoined           = "ERR_ALREADY_JOINED"
	CodeGUIDNotFound            = "ERR_GUID_NOT_FOUND"
	CodeUIDNotFound             = "ERR_UID_NOT_FOUND" // a missing or a deactivated user
	CodeNotAMember              = "ERR_NOT_A_MEMBER"
	CodeSameScope               = "ERR_SAME_SCOPE" // a scope change to the scope the member has: done
	CodeMemberScopeChangeFailed = "ERR_MEMBER_SCOPE_CHANGE_FAILED"
	CodeMemberDeleteFailed      = "ERR_MEMBER_DELETE_FAILED"
	CodeGroupDeleteFailed       = "ERR_GROUP_DELETE_FAILED"
	CodeNoVacancy               = "ERR_NO_VACANCY" // the group is full
	CodeInvalidJoinedAt         = "ERR_IMPORT_INVALID_JOINEDAT"
	CodeTooManyRequests         = "ERR_TOO_MANY_REQUESTS"
	CodeException               = "ERR_EXCEPTION"
	CodeBadRequest              = "ERR_BAD_REQUEST"
	CodeAPINotFound             = "ERR_API_NOT_FOUND" // a wrong path or base URL: never "not found" of an entity
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
	Endpoint   string        // "import", "import_users", "import_members", "update", "delete", "get", "update_user", ...
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
	if e.ShapeRefused() {
		b.WriteString(" (CometChat refused the shape of the whole request, not one row: the API no longer takes the body cometsync sends; not retried, report it)")
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
// rate limits, server errors, and requests that got no answer at all. A
// request whose shape CometChat refused is never retried, whatever its
// status.
func (e *APIError) Retryable() bool {
	if e.Auth() || e.ShapeRefused() {
		return false
	}
	return e.Status == 0 || e.RateLimited() || e.Status >= 500
}

// Exists reports whether CometChat refused the request because what it
// creates is already there (see CodeSaysExists).
func (e *APIError) Exists() bool { return CodeSaysExists(e.Code) }

// NotFound reports whether CometChat refused the request because the group,
// user or membership it names does not exist (see CodeSaysNotFound). A
// wrong path (ERR_API_NOT_FOUND) or a bare 404 without a code is not.
func (e *APIError) NotFound() bool { return CodeSaysNotFound(e.Code) }

// ShapeRefused reports whether CometChat refused a data-import request as
// a whole with ERR_IMPORT_INVALID_<ENTITY>_FORMAT: the body's shape is not
// what it takes, so sending it again cannot help.
func (e *APIError) ShapeRefused() bool {
	return strings.HasPrefix(e.Code, "ERR_IMPORT_INVALID_") && strings.HasSuffix(e.Code, "_FORMAT")
}

// CodeSaysExists reports whether code says that the entity is already
// there. Which code a re-import of an existing user or membership answers
// is not documented, so besides the codes seen (ERR_GUID_ALREADY_EXISTS,
// ERR_UID_ALREADY_EXISTS, ERR_IMPORT_MUID_ALREADY_EXISTS,
// ERR_ALREADY_JOINED) any code that contains ALREADY_EXIST or
// ALREADY_JOINED counts.
func CodeSaysExists(code string) bool {
	switch code {
	case CodeGUIDAlreadyExists, CodeUIDAlreadyExists, CodeMemberIDAlreadyExists, CodeAlreadyJoined:
		return true
	}
	code = strings.ToUpper(code)
	return strings.Contains(code, "ALREADY_EXIST") || strings.Contains(code, "ALREADY_JOINED")
}

// CodeSaysNotFound reports whether code says that a group
// (ERR_GUID_NOT_FOUND), a user (ERR_UID_NOT_FOUND: missing or deactivated)
// or a membership (ERR_NOT_A_MEMBER) does not exist. For a delete that
// means done; for a member import it means its user or group is missing.
func CodeSaysNotFound(code string) bool {
	switch code {
	case CodeGUIDNotFound, CodeUIDNotFound, CodeNotAMember:
		return true
	}
	return false
}

// IsAuth reports whether err is an APIError that refused the credentials.
func IsAuth(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Auth()
}
