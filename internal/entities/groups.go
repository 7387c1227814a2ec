// Package entities plugs each kind of CometChat object into the sync
// engine (syncer.Entity): how a row becomes the object, what its key is,
// and how it is imported and updated. One file an entity.
package entities

import (
	"context"
	"strings"

	"github.com/cometsync/cometsync/internal/cometchat"
	"github.com/cometsync/cometsync/internal/mapping"
	"github.com/cometsync/cometsync/internal/state"
	"github.com/cometsync/cometsync/internal/syncer"
)

// GroupsAPI is the part of CometChat the groups stream calls.
type GroupsAPI interface {
	Import(ctx context.Context, groups []cometchat.Group) (map[string]cometchat.RowResult, error)
	Update(ctx context.Context, guid string, u cometchat.Update) error
	Delete(ctx context.Context, guid string) error
}

var _ GroupsAPI = (*cometchat.Client)(nil)

// Groups is the groups stream's entity: rows mapped by mapping.Mapper,
// imported with POST /data_import/groups, updated with PUT /groups/{guid}.
type Groups struct {
	Mapper *mapping.Mapper
	API    GroupsAPI
}

var _ syncer.Entity = Groups{}

// Map maps a row to its group.
func (e Groups) Map(values []any) (syncer.Object, error) {
	g, err := e.Mapper.Map(values)
	if err != nil {
		return syncer.Object{Key: g.GUID}, err
	}
	return syncer.Object{Key: g.GUID, Hash: mapping.Hash(g), Present: mapping.Present(g), Value: g}, nil
}

// KeyColumns is the column the guid comes from.
func (e Groups) KeyColumns() []string { return []string{e.Mapper.GUIDColumn()} }

// JoinKey returns the guid.
func (Groups) JoinKey(parts []string) string { return strings.Join(parts, "") }

// Import imports the groups.
func (e Groups) Import(ctx context.Context, objs []syncer.Object) (map[string]cometchat.RowResult, error) {
	groups := make([]cometchat.Group, len(objs))
	for i, o := range objs {
		groups[i] = o.Value.(cometchat.Group)
	}
	return e.API.Import(ctx, groups)
}

// Update sends the PUT that makes the group equal to the row.
func (e Groups) Update(ctx context.Context, obj syncer.Object, known *state.Delivered) error {
	return e.API.Update(ctx, obj.Key, groupUpdate(obj.Value.(cometchat.Group), known))
}

// Delete deletes the group (DELETE /groups/{guid}), and with it its
// members.
func (e Groups) Delete(ctx context.Context, key string) (bool, error) {
	return false, e.API.Delete(ctx, key)
}

// groupUpdate builds the PUT body that makes the group equal to the row:
// optional fields that are NULL now are cleared where the API allows it.
func groupUpdate(g cometchat.Group, known *state.Delivered) cometchat.Update {
	u := cometchat.Update{Name: g.Name, Type: g.Type, Password: g.Password, Icon: g.Icon, Owner: g.Owner, Metadata: g.Metadata}
	// Without a record of what was delivered, clear every absent field: the
	// row is the truth.
	had := func(bit uint32) bool { return known == nil || known.Present&bit != 0 }
	if len(g.Tags) > 0 {
		tags := g.Tags
		u.Tags = &tags
	} else if had(mapping.FieldTags) {
		u.Tags = &[]string{}
	}
	if g.Icon == "" && had(mapping.FieldIcon) {
		u.Unset = append(u.Unset, "icon")
	}
	if len(g.Metadata) == 0 && had(mapping.FieldMetadata) {
		u.Unset = append(u.Unset, "metadata")
	}
	return u
}
