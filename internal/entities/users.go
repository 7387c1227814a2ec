package entities

import (
	"context"
	"strings"

	"github.com/cometsync/cometsync/internal/cometchat"
	"github.com/cometsync/cometsync/internal/mapping"
	"github.com/cometsync/cometsync/internal/state"
	"github.com/cometsync/cometsync/internal/syncer"
)

// UsersAPI is the part of CometChat the users stream calls.
type UsersAPI interface {
	ImportUsers(ctx context.Context, users []cometchat.User) (map[string]cometchat.RowResult, error)
	UpdateUser(ctx context.Context, uid string, u cometchat.UserUpdate) error
	DeleteUser(ctx context.Context, uid string, permanent bool) error
	ReactivateUsers(ctx context.Context, uids []string) error
}

var _ UsersAPI = (*cometchat.Client)(nil)

// Users is the users stream's entity: rows mapped by mapping.UserMapper,
// imported with POST /data_import/users, updated with PUT /users/{uid}.
type Users struct {
	Mapper *mapping.UserMapper
	API    UsersAPI
	// Permanent makes a delete erase the user with its messages
	// (users.delete: permanent); by default CometChat deactivates.
	Permanent bool
}

var _ syncer.Entity = Users{}

// Map maps a row to its user.
func (e Users) Map(values []any) (syncer.Object, error) {
	u, err := e.Mapper.Map(values)
	if err != nil {
		return syncer.Object{Key: u.UID}, err
	}
	return syncer.Object{Key: u.UID, Hash: mapping.UserHash(u), Present: mapping.UserPresent(u), Value: u}, nil
}

// KeyColumns is the column the uid comes from.
func (e Users) KeyColumns() []string { return []string{e.Mapper.UIDColumn()} }

// JoinKey returns the uid.
func (Users) JoinKey(parts []string) string { return strings.Join(parts, "") }

// Import imports the users.
func (e Users) Import(ctx context.Context, objs []syncer.Object) (map[string]cometchat.RowResult, error) {
	users := make([]cometchat.User, len(objs))
	for i, o := range objs {
		users[i] = o.Value.(cometchat.User)
	}
	return e.API.ImportUsers(ctx, users)
}

// Update sends the PUT that makes the user equal to the row.
// A user the state remembers as deactivated (delivered, no hash) is
// reactivated before the update.
func (e Users) Update(ctx context.Context, obj syncer.Object, known *state.Delivered) error {
	if known != nil && known.Hash == "" && known.RowKey != "" {
		if err := e.API.ReactivateUsers(ctx, []string{obj.Key}); err != nil {
			return err
		}
		known = nil // what it had before is not known: clear what the row lacks
	}
	return e.API.UpdateUser(ctx, obj.Key, userUpdate(obj.Value.(cometchat.User), known))
}

// Delete deactivates the user (DELETE /users/{uid}), or erases it when
// Permanent; kept reports a deactivation.
func (e Users) Delete(ctx context.Context, key string) (bool, error) {
	return !e.Permanent, e.API.DeleteUser(ctx, key, e.Permanent)
}

// userUpdate builds the PUT body that makes the user equal to the row:
// avatar, link and metadata that are NULL now are cleared with unset, and
// tags that became empty are replaced by an empty list. A role that became
// NULL stays as it is (the API cannot clear it), and so do the times, which
// PUT /users/{uid} does not take.
func userUpdate(u cometchat.User, known *state.Delivered) cometchat.UserUpdate {
	up := cometchat.UserUpdate{Name: u.Name, Avatar: u.Avatar, Link: u.Link, Role: u.Role, Metadata: u.Metadata}
	// Without a record of what was delivered, clear every absent field: the
	// row is the truth.
	had := func(bit uint32) bool { return known == nil || known.Present&bit != 0 }
	if len(u.Tags) > 0 {
		tags := u.Tags
		up.Tags = &tags
	} else if had(mapping.UserTags) {
		up.Tags = &[]string{}
	}
	if u.Avatar == "" && had(mapping.UserAvatar) {
		up.Unset = append(up.Unset, "avatar")
	}
	if u.Link == "" && had(mapping.UserLink) {
		up.Unset = append(up.Unset, "link")
	}
	if len(u.Metadata) == 0 && had(mapping.UserMetadata) {
		up.Unset = append(up.Unset, "metadata")
	}
	return up
}
