package cometchat

import "strings"

// existsCode reports whether a code says the object already exists:
// CometChat's own (ERR_GUID_ALREADY_EXISTS) and, as its docs leave the
// others unknown, any code that says so.
func existsCode(code string) bool {
	return strings.HasSuffix(code, "_ALREADY_EXISTS") || code == "ERR_ALREADY_JOINED"
}

// notFoundCode reports whether a code says the object does not exist.
func notFoundCode(code string) bool {
	return code == CodeGUIDNotFound || code == "ERR_UID_NOT_FOUND" || code == "ERR_NOT_A_MEMBER"
}

// Exists reports that the import did not create the object because
// CometChat already has one with this key.
func (r RowResult) Exists() bool { return !r.OK && existsCode(r.Code) }

// NotFound reports that CometChat has no object with this key.
func (e *APIError) NotFound() bool { return notFoundCode(e.Code) }
