package cometchat

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
)

// Group is one group as CometChat's data-import endpoint takes it
// (POST /data_import/groups). Optional fields are omitted when empty, so a
// NULL column in the source never reaches the API.
type Group struct {
	GUID              string          `json:"guid"`
	Name              string          `json:"name"`
	Type              string          `json:"type"`
	Password          string          `json:"password,omitempty"`
	Icon              string          `json:"icon,omitempty"`
	Owner             string          `json:"owner,omitempty"`
	CreatedAt         int64           `json:"createdAt,omitempty"`
	Metadata          json.RawMessage `json:"metadata,omitempty"`
	Tags              []string        `json:"tags,omitempty"`
	GroupOwnerDetails *OwnerDetails   `json:"groupOwnerDetails,omitempty"`
}

// OwnerDetails is the import object's groupOwnerDetails: the owner user,
// sent only when the source row names an owner.
type OwnerDetails struct {
	UID           string          `json:"uid"`
	Name          string          `json:"name,omitempty"`
	Avatar        string          `json:"avatar,omitempty"`
	Link          string          `json:"link,omitempty"`
	Role          string          `json:"role,omitempty"`
	CreatedAt     int64           `json:"createdAt,omitempty"`
	LastActiveAt  int64           `json:"lastActiveAt,omitempty"`
	Metadata      json.RawMessage `json:"metadata,omitempty"`
	Tags          []string        `json:"tags,omitempty"`
	DeactivatedAt int64           `json:"deactivatedAt,omitempty"`
}

// groupImport is how groups travel in POST /data_import/groups.
var groupImport = importSpec[Group]{
	endpoint: "import",
	path:     "/data_import/groups",
	wrapper:  "groups",
	keyName:  "guid",
	key:      func(g Group) string { return g.GUID },
}

// Import sends up to MaxBatch groups to POST /data_import/groups and
// returns the per-row answers keyed by guid. A guid the answer does not
// mention gets a RowResult with CodeNoRowResult. The error is an *APIError
// when the request as a whole failed (after the retries it deserved).
func (c *Client) Import(ctx context.Context, groups []Group) (map[string]RowResult, error) {
	return importBatch(ctx, c, groupImport, groups)
}

// Update is the body of PUT /groups/{guid}. Nil/empty fields are left as
// they are in CometChat; Unset names fields to clear (icon, description,
// metadata). Tags is a pointer so that an empty list can clear tags.
type Update struct {
	Name     string          `json:"name,omitempty"`
	Type     string          `json:"type,omitempty"`
	Password string          `json:"password,omitempty"`
	Icon     string          `json:"icon,omitempty"`
	Owner    string          `json:"owner,omitempty"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
	Tags     *[]string       `json:"tags,omitempty"`
	Unset    []string        `json:"unset,omitempty"`
}

// Update changes an existing group. An unknown guid is an *APIError with
// Code ERR_GUID_NOT_FOUND.
func (c *Client) Update(ctx context.Context, guid string, u Update) error {
	_, err := c.do(ctx, "update", http.MethodPut, "/groups/"+url.PathEscape(guid), u, c.otherPace)
	return err
}

// Delete removes a group (DELETE /groups/{guid}); CometChat drops its
// members with it. An unknown guid is an *APIError with Code
// ERR_GUID_NOT_FOUND, which NotFound reports.
func (c *Client) Delete(ctx context.Context, guid string) error {
	_, err := c.do(ctx, "delete", http.MethodDelete, "/groups/"+url.PathEscape(guid), nil, c.otherPace)
	return err
}
