package cometchattest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// Endpoint names, as used in Stats.Requests keys.
const (
	endpointImport  = "import"  // POST /data_import/groups
	endpointGroup   = "group"   // GET, PUT, DELETE /groups/{guid}
	endpointGroups  = "groups"  // GET /groups
	endpointUnknown = "unknown" // anything else: 404 ERR_API_NOT_FOUND
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
)

// route is what a request asks for, decided before any fault so that every
// request, answered or not, is counted under its endpoint.
type route struct {
	endpoint string
	guid     string // lowercased path guid, for endpointGroup
}

func routeOf(r *http.Request) route {
	p := r.URL.Path
	// In production /v3 is part of the client's base URL; tests may omit it.
	if p == "/v3" || strings.HasPrefix(p, "/v3/") {
		p = p[len("/v3"):]
	}
	p = strings.Trim(p, "/")
	switch {
	case p == "data_import/groups" && r.Method == http.MethodPost:
		return route{endpoint: endpointImport}
	case p == "groups" && r.Method == http.MethodGet:
		return route{endpoint: endpointGroups}
	}
	if guid, ok := strings.CutPrefix(p, "groups/"); ok && guid != "" && !strings.Contains(guid, "/") {
		switch r.Method {
		case http.MethodGet, http.MethodPut, http.MethodDelete:
			return route{endpoint: endpointGroup, guid: strings.ToLower(guid)}
		}
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

// view renders rec; the caller holds e.mu.
func (rec *record) view() groupView {
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
	if g.Owner != "" {
		// The owner is the group's first member.
		v.MembersCount = 1
	}
	return v
}
