package cometchat

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
)

// User is one user as CometChat's data-import endpoint takes it
// (POST /data_import/users). Times are 10-digit UNIX seconds. Optional
// fields are omitted when empty, so a NULL column never reaches the API. A
// user imported with DeactivatedAt is imported deactivated.
type User struct {
	UID           string          `json:"uid"`
	Name          string          `json:"name"`
	Avatar        string          `json:"avatar,omitempty"`
	Link          string          `json:"link,omitempty"`
	Role          string          `json:"role,omitempty"` // must exist in the app already
	Metadata      json.RawMessage `json:"metadata,omitempty"`
	Tags          []string        `json:"tags,omitempty"`
	CreatedAt     int64           `json:"createdAt,omitempty"`
	LastActiveAt  int64           `json:"lastActiveAt,omitempty"`
	DeactivatedAt int64           `json:"deactivatedAt,omitempty"`
}

// userImport is how users travel in POST /data_import/users.
var userImport = importSpec[User]{
	endpoint: "import_users",
	path:     "/data_import/users",
	wrapper:  "users",
	keyName:  "uid",
	key:      func(u User) string { return u.UID },
}

// ImportUsers sends up to MaxBatch users to POST /data_import/users
// ({"users": {"<uid>": {...}}}) and returns the per-row answers keyed by
// uid, read like Import's. A user that exists already is answered with a
// row result whose Exists is true (the import does not update it: use
// UpdateUser). It shares the import pacer with the other data imports.
func (c *Client) ImportUsers(ctx context.Context, users []User) (map[string]RowResult, error) {
	return importBatch(ctx, c, userImport, users)
}

// UserUpdate is the body of PUT /users/{uid}. Empty fields are left as they
// are in CometChat; Unset names fields to clear (UserUnsettable). Tags is a
// pointer so that an empty list can clear the tags.
type UserUpdate struct {
	Name     string          `json:"name,omitempty"`
	Avatar   string          `json:"avatar,omitempty"`
	Link     string          `json:"link,omitempty"`
	Role     string          `json:"role,omitempty"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
	Tags     *[]string       `json:"tags,omitempty"`
	Unset    []string        `json:"unset,omitempty"`
}

// UserUnsettable are the fields PUT /users/{uid} can clear with unset.
var UserUnsettable = []string{"avatar", "link", "metadata"}

// UpdateUser changes an existing user (PUT /users/{uid}). A missing or
// deactivated user is an *APIError with Code ERR_UID_NOT_FOUND (NotFound).
// An Unset naming a field CometChat cannot clear is refused before sending.
func (c *Client) UpdateUser(ctx context.Context, uid string, u UserUpdate) error {
	for _, f := range u.Unset {
		if !slices.Contains(UserUnsettable, f) {
			return fmt.Errorf("cometchat update_user %q: unset %q: CometChat can clear only avatar, link and metadata", uid, f)
		}
	}
	_, err := c.do(ctx, "update_user", http.MethodPut, "/users/"+url.PathEscape(uid), u, c.otherPace)
	return err
}

// DeleteUser sends DELETE /users/{uid} with {"permanent": permanent}.
// CometChat only deactivates by default (ReactivateUsers brings the user
// back); permanent erases the user with its messages and conversations,
// irreversibly. A missing user is ERR_UID_NOT_FOUND (NotFound).
func (c *Client) DeleteUser(ctx context.Context, uid string, permanent bool) error {
	body := struct {
		Permanent bool `json:"permanent"`
	}{permanent}
	_, err := c.do(ctx, "delete_user", http.MethodDelete, "/users/"+url.PathEscape(uid), body, c.otherPace)
	return err
}

// ReactivateUsers brings deactivated users back with PUT /users
// {"uidsToActivate": [...]}. How many uids one call takes is not
// documented; callers send modest batches (MaxBatch).
func (c *Client) ReactivateUsers(ctx context.Context, uids []string) error {
	if len(uids) == 0 {
		return nil
	}
	body := struct {
		UIDs []string `json:"uidsToActivate"`
	}{uids}
	_, err := c.do(ctx, "reactivate_users", http.MethodPut, "/users", body, c.otherPace)
	return err
}
