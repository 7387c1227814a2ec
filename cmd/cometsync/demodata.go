package main

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// The sample's sizes: users user-01..user-40, groups 1..240 (four of them
// bad), and demoMemberGroups groups of demoPerGroup members each, plus one
// membership of demoLateUser, whose users row comes only later.
const (
	demoUsers        = 40
	demoGroups       = 240
	demoFirstMembers = 11 // the first group with members
	demoMemberGroups = 30
	demoPerGroup     = 4
	demoMemberships  = demoMemberGroups*demoPerGroup + 1
	demoLateUser     = "user-41"
	demoLateGroup    = "team-0011"
)

// The membership whose scope the demo changes: the third member of
// team-0012, a participant.
const demoScopeGroup = 12

// demoScopes are the scopes of a group's members, in the order they
// joined; NULL is a participant by default.
var demoScopes = [demoPerGroup]any{"admin", "moderator", "participant", nil}

// demoStamp is how the sample writes its SQLite text timestamps.
const demoStamp = "2006-01-02 15:04:05.000"

// demoMember is the uid of a group's j'th member.
func demoMember(group, j int) string {
	return fmt.Sprintf("user-%02d", (group*demoPerGroup+j)%demoUsers+1)
}

// createDemoData writes the sample schema and rows: users, groups (public,
// private and password groups, with and without owners, icons, metadata
// and tags, and four bad rows that break CometChat's constraints) and
// memberships with every scope.
func createDemoData(ctx context.Context, db *sql.DB) error {
	stmts := []string{
		`CREATE TABLE users (
			id INTEGER PRIMARY KEY, uid TEXT NOT NULL, display_name TEXT, avatar_url TEXT, profile TEXT,
			tags TEXT, created_at TEXT, updated_at TEXT NOT NULL)`,
		`CREATE INDEX idx_users_cursor ON users(updated_at, id)`,
		`CREATE TABLE chat_groups (
			id INTEGER PRIMARY KEY, guid TEXT NOT NULL, title TEXT, kind TEXT, join_password TEXT,
			icon_url TEXT, created_at INTEGER, meta TEXT, tags TEXT, owner_uid TEXT, updated_at TEXT NOT NULL)`,
		`CREATE INDEX idx_groups_cursor ON chat_groups(updated_at, id)`,
		`CREATE TABLE memberships (
			id INTEGER PRIMARY KEY, group_id INTEGER NOT NULL, user_uid TEXT NOT NULL, role TEXT,
			joined_at TEXT, updated_at TEXT NOT NULL)`,
		`CREATE INDEX idx_memberships_cursor ON memberships(updated_at, id)`,
	}
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return err
		}
	}
	base := time.Now().UTC().Add(-48 * time.Hour)
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, fill := range []func(context.Context, *sql.Tx, time.Time) error{demoUserRows, demoGroupRows, demoMembershipRows} {
		if err := fill(ctx, tx, base); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// demoUserRows writes the users, some with an avatar, a profile (sent as
// metadata) or tags.
func demoUserRows(ctx context.Context, tx *sql.Tx, base time.Time) error {
	for i := 1; i <= demoUsers; i++ {
		var avatar, profile, tags any
		if i%2 == 0 {
			avatar = fmt.Sprintf("https://example.com/avatars/%d.png", i)
		}
		if i%5 == 0 {
			profile = fmt.Sprintf(`{"team": "team-%d"}`, i%3)
		}
		if i%4 == 0 {
			tags = "staff"
		}
		stamp := base.Add(time.Duration(i) * time.Second)
		if _, err := tx.ExecContext(ctx, `INSERT INTO users VALUES(?,?,?,?,?,?,?,?)`,
			i, fmt.Sprintf("user-%02d", i), fmt.Sprintf("User %d", i), avatar, profile, tags,
			base.Add(-time.Duration(i)*time.Hour).Format("2006-01-02 15:04:05"), stamp.Format(demoStamp)); err != nil {
			return err
		}
	}
	return nil
}

// demoGroupRows writes the groups.
func demoGroupRows(ctx context.Context, tx *sql.Tx, base time.Time) error {
	kinds := []string{"public", "private", "password"}
	for i := 1; i <= demoGroups; i++ {
		kind := kinds[i%3]
		var pass, icon, meta, tags, owner any
		if kind == "password" {
			pass = fmt.Sprintf("secret-%d", i)
		}
		if i%4 == 0 {
			icon = fmt.Sprintf("https://example.com/icons/%d.png", i)
		}
		if i%5 == 0 {
			meta = fmt.Sprintf(`{"department": "dept-%d", "size": %d}`, i%7, i)
		}
		if i%2 == 0 {
			tags = "team,demo"
		}
		if i%3 != 0 {
			owner = fmt.Sprintf("user-%02d", i%20+1)
		}
		guid := fmt.Sprintf("team-%04d", i)
		name := fmt.Sprintf("Team %d", i)
		if i == 7 {
			guid = "launch-room-7"
		}
		// Four bad rows, each breaking one documented constraint.
		switch i {
		case 50:
			guid = "Bad Guid With Spaces!"
		case 100:
			name = strings.Repeat("very long name ", 10)
		case 150:
			kind, pass = "password", nil
		case 200:
			meta = `["not", "an", "object"]`
		}
		stamp := base.Add(time.Duration(i) * time.Minute).Format(demoStamp)
		if _, err := tx.ExecContext(ctx, `INSERT INTO chat_groups VALUES(?,?,?,?,?,?,?,?,?,?,?)`,
			i, guid, name, kind, pass, icon, base.Unix()+int64(i), meta, tags, owner, stamp); err != nil {
			return err
		}
	}
	return nil
}

// demoMembershipRows writes demoPerGroup members to each of the groups
// from demoFirstMembers on, one of each scope and one with none, and the
// membership of demoLateUser, who has no users row yet.
func demoMembershipRows(ctx context.Context, tx *sql.Tx, base time.Time) error {
	joined := base.Add(24 * time.Hour).Format("2006-01-02 15:04:05")
	id := 0
	insert := func(group int, uid string, scope any) error {
		id++
		stamp := base.Add(6*time.Hour + time.Duration(id)*time.Second).Format(demoStamp)
		_, err := tx.ExecContext(ctx, `INSERT INTO memberships VALUES(?,?,?,?,?,?)`, id, group, uid, scope, joined, stamp)
		return err
	}
	for g := demoFirstMembers; g < demoFirstMembers+demoMemberGroups; g++ {
		for j := range demoPerGroup {
			if err := insert(g, demoMember(g, j), demoScopes[j]); err != nil {
				return err
			}
		}
	}
	return insert(demoFirstMembers, demoLateUser, nil)
}

// demoStmt is one statement of the sample's changes.
type demoStmt struct {
	query string
	args  []any
}

// changeDemoData renames five groups, touches ten without changing them,
// fixes one bad row without touching its timestamp (the error store's
// retry finds it anyway) and adds three groups; renames a user, adds the
// late user's row, and makes a participant of team-0012 a moderator.
func changeDemoData(ctx context.Context, db *sql.DB) error {
	now := func(i int) string {
		return time.Now().UTC().Add(-time.Duration(10-i) * time.Second).Format(demoStamp)
	}
	stmts := []demoStmt{
		{`UPDATE chat_groups SET guid = 'team-0050' WHERE id = 50`, nil},
		// user-33 owns no group: renaming an owner would change its groups'
		// owner details too.
		{`UPDATE users SET display_name = 'User 33 (renamed)', updated_at = ? WHERE id = 33`, []any{now(1)}},
		{`INSERT INTO users(id, uid, display_name, created_at, updated_at) VALUES(?, ?, 'User 41', ?, ?)`,
			[]any{demoUsers + 1, demoLateUser, time.Now().UTC().Format("2006-01-02 15:04:05"), now(2)}},
		{`UPDATE memberships SET role = 'moderator', updated_at = ? WHERE group_id = ? AND user_uid = ?`,
			[]any{now(3), demoScopeGroup, demoMember(demoScopeGroup, 2)}},
	}
	for i := 1; i <= 5; i++ {
		stmts = append(stmts, demoStmt{`UPDATE chat_groups SET title = ?, updated_at = ? WHERE id = ?`, []any{fmt.Sprintf("Team %d (renamed)", i+2), now(i), i + 2}})
	}
	for i := 1; i <= 10; i++ {
		stmts = append(stmts, demoStmt{`UPDATE chat_groups SET updated_at = ? WHERE id = ?`, []any{now(i), 100 + i}})
	}
	for i := 1; i <= 3; i++ {
		stmts = append(stmts, demoStmt{`INSERT INTO chat_groups(id, guid, title, kind, created_at, updated_at) VALUES(?,?,?,?,?,?)`,
			[]any{demoGroups + i, fmt.Sprintf("new-team-%d", i), fmt.Sprintf("New team %d", i), "public", time.Now().Unix(), now(i)}})
	}
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s.query, s.args...); err != nil {
			return err
		}
	}
	return nil
}
