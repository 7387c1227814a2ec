package cometchat

import "encoding/json"

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
