package entities

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/cometsync/cometsync/internal/cometchat"
	"github.com/cometsync/cometsync/internal/mapping"
	"github.com/cometsync/cometsync/internal/state"
	"github.com/cometsync/cometsync/internal/syncer"
)

// MembersAPI is the part of CometChat the members stream calls.
type MembersAPI interface {
	ImportMembers(ctx context.Context, members []cometchat.Member) (map[string]cometchat.RowResult, error)
	AddMembers(ctx context.Context, guid string, uids map[string][]string) (map[string]cometchat.RowResult, error)
	SetMemberScope(ctx context.Context, guid, uid, scope string) error
	KickMember(ctx context.Context, guid, uid string) error
}

var _ MembersAPI = (*cometchat.Client)(nil)

// Via is how memberships are created.
type Via int

const (
	// ViaImport creates memberships with POST /data_import/members, 50 a
	// request at the import endpoints' pace; it keeps joinedAt.
	ViaImport Via = iota
	// ViaREST creates them with POST /groups/{guid}/members, 25 uids of one
	// group a call at the pace of other REST calls (other_per_minute): far
	// faster for a large graph, at the cost of joinedAt.
	ViaREST
)

// String returns the config value of v: "import" or "rest".
func (v Via) String() string {
	if v == ViaREST {
		return "rest"
	}
	return "import"
}

// ParseVia reads members.via: "import" (or empty, the default) or "rest".
func ParseVia(s string) (Via, error) {
	switch s {
	case "", "import":
		return ViaImport, nil
	case "rest":
		return ViaREST, nil
	}
	return ViaImport, fmt.Errorf("members.via: %q is not a way to create memberships; use import (keeps joinedAt) or rest (faster, no joinedAt)", s)
}

// addCallsInFlight is how many add-members calls of one batch (for
// different groups) may run at once; the client's pacer keeps them within
// other_per_minute.
const addCallsInFlight = 4

// Members is the members stream's entity: rows mapped by
// mapping.MemberMapper and keyed by cometchat.MemberID, created as Via
// says, and updated (a scope change) with PUT /groups/{guid}/members/{uid}.
type Members struct {
	Mapper *mapping.MemberMapper
	API    MembersAPI
	Via    Via
}

var _ syncer.Entity = Members{}

// Map maps a row to its membership.
func (e Members) Map(values []any) (syncer.Object, error) {
	m, err := e.Mapper.Map(values)
	if err != nil {
		return syncer.Object{Key: m.MemberID}, err
	}
	return syncer.Object{Key: m.MemberID, Hash: mapping.MemberHash(m), Present: mapping.MemberPresent(m), Value: m}, nil
}

// KeyColumns are the columns of the guid and the uid.
func (e Members) KeyColumns() []string {
	return []string{e.Mapper.GUIDColumn(), e.Mapper.UIDColumn()}
}

// JoinKey returns the member id of a guid and a uid.
func (Members) JoinKey(parts []string) string {
	if len(parts) != 2 {
		return ""
	}
	return cometchat.MemberID(parts[0], parts[1])
}

// Import creates the memberships and returns each one's result by member
// id. One that exists already comes back with a result whose Exists is
// true, so that the engine then sets its scope.
func (e Members) Import(ctx context.Context, objs []syncer.Object) (map[string]cometchat.RowResult, error) {
	members := make([]cometchat.Member, len(objs))
	for i, o := range objs {
		members[i] = o.Value.(cometchat.Member)
	}
	if e.Via == ViaREST {
		return e.add(ctx, members)
	}
	return e.API.ImportMembers(ctx, members)
}

// Update sets the membership's scope. A member that has it already is done.
func (e Members) Update(ctx context.Context, obj syncer.Object, _ *state.Delivered) error {
	m := obj.Value.(cometchat.Member)
	err := e.API.SetMemberScope(ctx, m.GUID, m.UID, m.Scope)
	var ae *cometchat.APIError
	if errors.As(err, &ae) && ae.Code == cometchat.CodeSameScope {
		return nil
	}
	return err
}

// addCall is one POST /groups/{guid}/members: at most MaxAddMembers uids.
type addCall struct {
	guid    string
	members []cometchat.Member
}

// add creates memberships with one add-members call per group and 25 uids,
// a few calls at a time. A call refused as a whole because its group does
// not exist fails each of its memberships with that answer; any other
// refusal of a call is the error of the whole batch (the engine splits the
// batch to find the row at fault).
func (e Members) add(ctx context.Context, members []cometchat.Member) (map[string]cometchat.RowResult, error) {
	calls := addCalls(members)
	results := make([]map[string]cometchat.RowResult, len(calls))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(addCallsInFlight)
	for i, c := range calls {
		g.Go(func() error {
			res, err := e.API.AddMembers(gctx, c.guid, c.uids())
			var ae *cometchat.APIError
			if err != nil && errors.As(err, &ae) && ae.NotFound() {
				res = make(map[string]cometchat.RowResult, len(c.members))
				for _, m := range c.members {
					res[m.UID] = cometchat.RowResult{Code: ae.Code, Message: ae.Error()}
				}
				err = nil
			}
			results[i] = res
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := make(map[string]cometchat.RowResult, len(members))
	for i, c := range calls {
		for _, m := range c.members {
			r, ok := results[i][m.UID]
			if !ok {
				r = cometchat.RowResult{Code: cometchat.CodeNoRowResult, Message: fmt.Sprintf("the add-members answer of group %q has no result for uid %q", c.guid, m.UID)}
			}
			out[m.MemberID] = r
		}
	}
	return out, nil
}

// addCalls splits members by group, in the order the groups first appear,
// and each group's in chunks of MaxAddMembers.
func addCalls(members []cometchat.Member) []addCall {
	var calls []addCall
	open := make(map[string]int) // guid → index of its call with room left
	for _, m := range members {
		i, ok := open[m.GUID]
		if !ok || len(calls[i].members) == cometchat.MaxAddMembers {
			calls = append(calls, addCall{guid: m.GUID})
			i = len(calls) - 1
			open[m.GUID] = i
		}
		calls[i].members = append(calls[i].members, m)
	}
	return calls
}

// uids is the call's body: its uids by scope.
func (c addCall) uids() map[string][]string {
	out := make(map[string][]string, 3)
	for _, m := range c.members {
		scope := m.Scope
		if scope == "" {
			scope = cometchat.ScopeParticipant
		}
		out[scope] = append(out[scope], m.UID)
	}
	return out
}

// Delete kicks the member out of its group (DELETE
// /groups/{guid}/members/{uid}); the key is "<guid>_member_<uid>".
func (e Members) Delete(ctx context.Context, key string) (bool, error) {
	guid, uid, ok := strings.Cut(key, memberSep)
	if !ok {
		return false, fmt.Errorf("member id %q is not <guid>%s<uid>", key, memberSep)
	}
	return false, e.API.KickMember(ctx, guid, uid)
}

// memberSep joins a member id's guid and uid (cometchat.MemberID).
const memberSep = "_member_"
