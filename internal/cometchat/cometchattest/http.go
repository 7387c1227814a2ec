package cometchattest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// Endpoint names, as used in Stats.Requests keys.
const (
	endpointImport        = "import"         // POST /data_import/groups
	endpointImportUsers   = "import_users"   // POST /data_import/users
	endpointImportMembers = "import_members" // POST /data_import/members
	endpointGroup         = "group"          // GET, PUT, DELETE /groups/{guid}
	endpointGroups        = "groups"         // GET /groups
	endpointUser          = "user"           // GET, PUT, DELETE /users/{uid}
	endpointUsers         = "users"          // GET /users, PUT /users (reactivate), DELETE /users (deactivate)
	endpointMembers       = "members"        // GET, POST /groups/{guid}/members
	endpointMember        = "member"         // PUT, DELETE /groups/{guid}/members/{uid}
	endpointUnknown       = "unknown"        // anything else: 404 ERR_API_NOT_FOUND
)

// Error codes answered outside the auth and rate-limit paths.
const (
	codeBadRequest    = "ERR_BAD_REQUEST"
	codeException     = "ERR_EXCEPTION"
	codeAPINotFound   = "ERR_API_NOT_FOUND"
	codeGUIDNotFound  = "ERR_GUID_NOT_FOUND"
	codeGUIDExists    = "ERR_GUID_ALREADY_EXISTS"
	codeInvalidGroup  = "ERR_IMPORT_INVALID_GROUP_FORMAT"
	codeEmptyPassword = "ERR_EMPTY_GROUP_PASS"
	codeRowFailed     = "ERR_OPERATION_FAILED"
	codeUIDNotFound   = "ERR_UID_NOT_FOUND"
	codeUIDExists     = "ERR_UID_ALREADY_EXISTS"
	codeMUIDExists    = "ERR_IMPORT_MUID_ALREADY_EXISTS"
	codeInvalidUser   = "ERR_IMPORT_INVALID_USER_FORMAT"
	codeInvalidMember = "ERR_IMPORT_INVALID_MEMBER_FORMAT"
	codeInvalidJoined = "ERR_IMPORT_INVALID_JOINEDAT"
	codeAlreadyJoined = "ERR_ALREADY_JOINED"
	codeNotAMember    = "ERR_NOT_A_MEMBER"
	codeSameScope     = "ERR_SAME_SCOPE"
)

// route is what a request asks for, decided before any fault so that every
// request, answered or not, is counted under its endpoint.
type route struct {
	endpoint string
	guid     string // lowercased path guid, for endpointGroup, endpointMembers and endpointMember
	uid      string // lowercased path uid, for endpointUser and endpointMember
}

// isImport reports whether the route is a data-import endpoint: they share
// one rate limit.
func (rt route) isImport() bool {
	return rt.endpoint == endpointImport || rt.endpoint == endpointImportUsers || rt.endpoint == endpointImportMembers
}

func routeOf(r *http.Request) route {
	p := r.URL.Path
	// In production /v3 is part of the client's base URL; tests may omit it.
	if p == "/v3" || strings.HasPrefix(p, "/v3/") {
		p = p[len("/v3"):]
	}
	parts := strings.Split(strings.Trim(p, "/"), "/")
	for _, part := range parts {
		if part == "" {
			return route{endpoint: endpointUnknown}
		}
	}
	m := r.Method
	get, put, del, post := m == http.MethodGet, m == http.MethodPut, m == http.MethodDelete, m == http.MethodPost
	switch {
	case len(parts) == 2 && parts[0] == "data_import" && post:
		switch parts[1] {
		case "groups":
			return route{endpoint: endpointImport}
		case "users":
			return route{endpoint: endpointImportUsers}
		case "members":
			return route{endpoint: endpointImportMembers}
		}
	case len(parts) == 1 && parts[0] == "groups" && get:
		return route{endpoint: endpointGroups}
	case len(parts) == 2 && parts[0] == "groups" && (get || put || del):
		return route{endpoint: endpointGroup, guid: strings.ToLower(parts[1])}
	case len(parts) == 3 && parts[0] == "groups" && parts[2] == "members" && (get || post):
		return route{endpoint: endpointMembers, guid: strings.ToLower(parts[1])}
	case len(parts) == 4 && parts[0] == "groups" && parts[2] == "members" && (put || del):
		return route{endpoint: endpointMember, guid: strings.ToLower(parts[1]), uid: strings.ToLower(parts[3])}
	case len(parts) == 1 && parts[0] == "users" && (get || put || del):
		return route{endpoint: endpointUsers}
	case len(parts) == 2 && parts[0] == "users" && (get || put || del):
		return route{endpoint: endpointUser, uid: strings.ToLower(parts[1])}
	}
	return route{endpoint: endpointUnknown}
}

// apiError is CometChat's error object outside a row.
type apiError struct {
	Code       string `json:"code"`
	Message    string `json:"message"`
	DevMessage string `json:"devMessage"`
	Source     string `json:"source"`
}

// writeJSON answers status with v as JSON and returns the outcome to record.
func writeJSON(w http.ResponseWriter, status int, v any) string {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// The client may be gone; there is nobody to tell about a write error.
	_ = json.NewEncoder(w).Encode(v)
	return strconv.Itoa(status)
}

func writeError(w http.ResponseWriter, status int, code, message string) string {
	return writeJSON(w, status, map[string]apiError{"error": {
		Code:       code,
		Message:    message,
		DevMessage: "emulator: " + message,
		Source:     "emulator",
	}})
}

// groupView is a group as the API answers it. The password is never
// answered, as CometChat never returns it.
type groupView struct {
	GUID           string          `json:"guid"`
	Name           string          `json:"name"`
	Type           string          `json:"type"`
	Icon           string          `json:"icon,omitempty"`
	Description    string          `json:"description,omitempty"`
	Owner          string          `json:"owner,omitempty"`
	Metadata       json.RawMessage `json:"metadata,omitempty"`
	Tags           []string        `json:"tags,omitempty"`
	CreatedAt      int64           `json:"createdAt"`
	UpdatedAt      int64           `json:"updatedAt,omitempty"`
	ConversationID string          `json:"conversationId"`
	MembersCount   int             `json:"membersCount"`
}

// view renders rec, a group with the given members; the caller holds e.mu.
func (rec *record) view(members map[string]memberRec) groupView {
	g := cloneGroup(rec.group)
	v := groupView{
		GUID:           g.GUID,
		Name:           g.Name,
		Type:           g.Type,
		Icon:           g.Icon,
		Description:    rec.description,
		Owner:          g.Owner,
		Metadata:       g.Metadata,
		Tags:           g.Tags,
		CreatedAt:      g.CreatedAt,
		UpdatedAt:      rec.updated,
		ConversationID: "group_" + g.GUID,
	}
	if v.CreatedAt == 0 {
		v.CreatedAt = rec.created
	}
	v.MembersCount = len(members)
	if _, ok := members[g.Owner]; g.Owner != "" && !ok {
		// The owner is the group's first member, whether or not a
		// membership of it was imported.
		v.MembersCount++
	}
	return v
}
