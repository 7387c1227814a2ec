package cometchat

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Member is one membership as CometChat's data-import endpoint takes it
// (POST /data_import/members). MemberID is CometChat's key of the
// membership, MemberID(GUID, UID); ImportMembers fills it when empty.
// JoinedAt is 10-digit UNIX seconds (after the group's createdAt, not in the
// future); the import keeps it, where AddMembers cannot.
type Member struct {
	MemberID string `json:"memberId"`
	GUID     string `json:"guid"`
	UID      string `json:"uid"`
	Scope    string `json:"scope,omitempty"` // ScopeAdmin, ScopeModerator or ScopeParticipant; CometChat's default is participant
	JoinedAt int64  `json:"joinedAt,omitempty"`
}

// The scopes a member can have in a group.
const (
	ScopeAdmin       = "admin"
	ScopeModerator   = "moderator"
	ScopeParticipant = "participant"
)

// scopeArrays maps a scope to its array in POST /groups/{guid}/members, in
// the order they are sent.
var scopeArrays = []struct{ scope, array string }{
	{ScopeAdmin, "admins"},
	{ScopeModerator, "moderators"},
	{ScopeParticipant, "participants"},
}

// MaxAddMembers is how many uids one POST /groups/{guid}/members takes,
// over all its arrays.
const MaxAddMembers = 25

// MemberID is CometChat's id of uid's membership of guid:
// "<guid>_member_<uid>", lowercased as CometChat lowercases both ids.
func MemberID(guid, uid string) string {
	return strings.ToLower(guid + "_member_" + uid)
}

// memberImport is how memberships travel in POST /data_import/members.
var memberImport = importSpec[Member]{
	endpoint: "import_members",
	path:     "/data_import/members",
	wrapper:  "members",
	keyName:  "member id",
	key:      func(m Member) string { return m.MemberID },
}

// ImportMembers sends up to MaxBatch memberships to POST /data_import/members
// ({"members": {"<guid>_member_<uid>": {...}}}) and returns the per-row
// answers keyed by member id, read like Import's. A membership whose user
// (missing or deactivated) or group CometChat does not have is a row result
// whose NotFound is true; one that exists already, whose Exists is true. It
// shares the import pacer with the other data imports.
func (c *Client) ImportMembers(ctx context.Context, members []Member) (map[string]RowResult, error) {
	if slices.ContainsFunc(members, func(m Member) bool { return m.MemberID == "" }) {
		members = slices.Clone(members)
		for i := range members {
			if members[i].MemberID == "" {
				members[i].MemberID = MemberID(members[i].GUID, members[i].UID)
			}
		}
	}
	return importBatch(ctx, c, memberImport, members)
}

// AddMembers adds users to one group with POST /groups/{guid}/members: uids
// maps a scope (ScopeAdmin, ScopeModerator, ScopeParticipant) to the uids
// that join with it, at most MaxAddMembers over all scopes and each uid once.
// One failing uid does not fail the call: the answer has a RowResult per uid
// (an existing member is ERR_ALREADY_JOINED, Exists; a missing or deactivated
// user ERR_UID_NOT_FOUND, NotFound). A uid the answer has no readable entry
// for is a failure (CodeNoRowResult or CodeUnreadableRowResult), never a
// success. The error is for the call as a whole (e.g. ERR_GUID_NOT_FOUND).
func (c *Client) AddMembers(ctx context.Context, guid string, uids map[string][]string) (map[string]RowResult, error) {
	body, n, err := addMembersBody(uids)
	if err != nil {
		return nil, fmt.Errorf("cometchat add_members to %q: %w", guid, err)
	}
	if n == 0 {
		return map[string]RowResult{}, nil
	}
	raw, err := c.do(ctx, "add_members", http.MethodPost, "/groups/"+url.PathEscape(guid)+"/members", body, c.otherPace)
	if err != nil {
		return nil, err
	}
	return parseAddMembers(raw, uids), nil
}

// addMembersBody checks uids and builds the body's arrays; n is the number
// of uids.
func addMembersBody(uids map[string][]string) (map[string][]string, int, error) {
	body := make(map[string][]string, len(scopeArrays))
	seen := make(map[string]string)
	for scope := range uids {
		if !validScope(scope) {
			return nil, 0, fmt.Errorf("scope %q: must be admin, moderator or participant", scope)
		}
	}
	n := 0
	for _, s := range scopeArrays {
		for _, uid := range uids[s.scope] {
			if prev, dup := seen[strings.ToLower(uid)]; dup {
				return nil, 0, fmt.Errorf("uid %q given twice (as %s and %s): one call adds each uid once", uid, prev, s.scope)
			}
			seen[strings.ToLower(uid)] = s.scope
			n++
		}
		if len(uids[s.scope]) > 0 {
			body[s.array] = uids[s.scope]
		}
	}
	if n > MaxAddMembers {
		return nil, 0, fmt.Errorf("%d uids in one call, CometChat takes at most %d over admins, moderators and participants", n, MaxAddMembers)
	}
	return body, n, nil
}

// parseAddMembers reads {"data": {"<scope array>": {"<uid>": {"success":
// ...}}}} per uid, tolerantly: the shape of a failed uid's entry is not
// documented, and an answer of another shape leaves every uid failed.
func parseAddMembers(raw []byte, uids map[string][]string) map[string]RowResult {
	var env struct {
		Data map[string]json.RawMessage `json:"data"`
	}
	if json.Unmarshal(raw, &env) != nil {
		env.Data = nil
	}
	out := make(map[string]RowResult)
	for _, s := range scopeArrays {
		keys := uids[s.scope]
		if len(keys) == 0 {
			continue
		}
		var entries map[string]json.RawMessage
		if json.Unmarshal(env.Data[s.array], &entries) != nil {
			entries = nil
		}
		missing := fmt.Sprintf("the add-members answer has no result for this uid under %s: %s", s.array, clip(string(raw), 200))
		for uid, r := range rowResults(entries, keys, missing) {
			out[uid] = r
		}
	}
	return out
}

// SetMemberScope changes a member's scope with PUT
// /groups/{guid}/members/{uid} {"scope": scope}. ERR_SAME_SCOPE
// (CodeSameScope) means the member has that scope already; ERR_NOT_A_MEMBER
// that uid is no member of guid.
func (c *Client) SetMemberScope(ctx context.Context, guid, uid, scope string) error {
	if !validScope(scope) {
		return fmt.Errorf("cometchat set_member_scope of %q in %q: scope %q: must be admin, moderator or participant", uid, guid, scope)
	}
	body := struct {
		Scope string `json:"scope"`
	}{scope}
	_, err := c.do(ctx, "set_member_scope", http.MethodPut, memberPath(guid, uid), body, c.otherPace)
	return err
}

// KickMember removes uid from guid with DELETE /groups/{guid}/members/{uid}
// (the user may join again; a ban is another call). ERR_NOT_A_MEMBER
// (NotFound) means uid is no member of guid.
func (c *Client) KickMember(ctx context.Context, guid, uid string) error {
	_, err := c.do(ctx, "kick_member", http.MethodDelete, memberPath(guid, uid), nil, c.otherPace)
	return err
}

func validScope(scope string) bool {
	return scope == ScopeAdmin || scope == ScopeModerator || scope == ScopeParticipant
}

func memberPath(guid, uid string) string {
	return "/groups/" + url.PathEscape(guid) + "/members/" + url.PathEscape(uid)
}
