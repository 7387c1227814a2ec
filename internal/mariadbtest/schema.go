package mariadbtest

// GroupsSchema is a typical application's groups table, with owners joined
// from users and the (updated_at, id) index the keyset reads by: the schema
// the end-to-end tests of cmd/cometsync and the benchmarks run against.
const GroupsSchema = `
CREATE TABLE users (uid VARCHAR(100) PRIMARY KEY, display_name VARCHAR(200), avatar_url VARCHAR(500));
CREATE TABLE chat_groups (
	id BIGINT PRIMARY KEY AUTO_INCREMENT,
	guid VARCHAR(200) NOT NULL,
	title VARCHAR(300),
	kind VARCHAR(20),
	join_password VARCHAR(200),
	icon_url VARCHAR(3100),
	created_at DATETIME(6),
	created_ms BIGINT,
	meta JSON,
	tags VARCHAR(3000),
	owner_uid VARCHAR(100),
	updated_at DATETIME(6) NOT NULL,
	KEY idx_cursor (updated_at, id)
);`

// GroupsQuery is the source.query a user would write over GroupsSchema:
// every group with its owner's details, its columns named for CometChat's
// import fields. Tests of cmd/cometsync make variants of it by replacing
// parts of its text, so change it together with them.
const GroupsQuery = `SELECT g.id, g.updated_at, g.guid, g.title AS name, g.kind AS type,
       g.join_password AS password, g.icon_url AS icon, g.created_at,
       g.meta AS metadata, g.tags, g.owner_uid,
       u.display_name AS owner_name, u.avatar_url AS owner_avatar
FROM chat_groups g LEFT JOIN users u ON u.uid = g.owner_uid`

// UsersSchema is a typical application's own users table, with its ids,
// timestamps and the (updated_at, id) index: the users stream's source in
// the benchmarks. It is apart from GroupsSchema's users, which holds the
// groups' owners.
const UsersSchema = `
CREATE TABLE app_users (
	id BIGINT PRIMARY KEY AUTO_INCREMENT,
	uid VARCHAR(100) NOT NULL,
	display_name VARCHAR(200),
	avatar_url VARCHAR(500),
	created_at DATETIME(6),
	last_seen_at DATETIME(6),
	meta JSON,
	updated_at DATETIME(6) NOT NULL,
	KEY idx_users_cursor (updated_at, id)
)`

// UsersQuery is the users.query a user would write over UsersSchema.
const UsersQuery = `SELECT u.id, u.updated_at, u.uid, u.display_name AS name, u.avatar_url AS avatar,
       u.created_at, u.last_seen_at AS last_active_at, u.meta AS metadata
FROM app_users u`

// MembersSchema is a memberships table joined to GroupsSchema's
// chat_groups by id: the members stream's source in the benchmarks.
const MembersSchema = `
CREATE TABLE memberships (
	id BIGINT PRIMARY KEY AUTO_INCREMENT,
	group_id BIGINT NOT NULL,
	user_uid VARCHAR(100) NOT NULL,
	role VARCHAR(20),
	joined_at DATETIME(6),
	updated_at DATETIME(6) NOT NULL,
	KEY idx_members_cursor (updated_at, id)
)`

// MembersQuery is the members.query a user would write over MembersSchema
// and GroupsSchema.
const MembersQuery = `SELECT m.id, m.updated_at, g.guid, m.user_uid AS uid, m.role AS scope, m.joined_at
FROM memberships m JOIN chat_groups g ON g.id = m.group_id`
