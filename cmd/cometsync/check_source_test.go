package main

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// channelsSchema is a real chat product's channels table: a bigint cursor
// of epoch milliseconds, names unique only per team, a soft-delete column
// with its own index and none on the cursor, and an enum type.
const channelsSchema = `CREATE TABLE channels (
	id VARCHAR(26) PRIMARY KEY,
	team_id VARCHAR(26) NOT NULL,
	name VARCHAR(64) NOT NULL,
	display_name VARCHAR(64) NOT NULL,
	type ENUM('O', 'P') NOT NULL,
	update_at BIGINT NOT NULL,
	delete_at BIGINT NOT NULL DEFAULT 0,
	UNIQUE KEY (name, team_id),
	KEY idx_delete_at (delete_at)
)`

// channelsQuery maps channels to groups with a unique guid and CometChat's
// types.
const channelsQuery = `SELECT id, CONCAT(team_id, '-', name) AS guid, display_name AS name,
       CASE type WHEN 'O' THEN 'public' ELSE 'private' END AS type, update_at
FROM channels WHERE delete_at = 0`

// withChannels adds the channels table with n rows, updated an hour ago and
// earlier in epoch milliseconds, names repeated across 3 teams.
func withChannels(e *env, n int) {
	e.t.Helper()
	e.exec(channelsSchema)
	e.exec(`INSERT INTO channels (id, team_id, name, display_name, type, update_at)
		SELECT CONCAT('c', seq), CONCAT('t', seq % 3), CONCAT('town-square-', seq DIV 3), CONCAT('Town Square ', seq), ELT(1 + seq % 2, 'O', 'P'),
			TIMESTAMPDIFF(MICROSECOND, '1970-01-01', UTC_TIMESTAMP(6)) DIV 1000 - 3600000 - seq * 1000
		FROM seq_1_to_` + strconv.Itoa(n))
}

// useChannels writes a config reading query over channels by update_at,
// with integer_unit set when unit is not "".
func (e *env) useChannels(query, unit string) {
	e.t.Helper()
	e.configure(func(o *cfgOpts) { o.query = query })
	b, err := os.ReadFile(e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	cursor := "column: update_at\n    tiebreaker: id"
	if unit != "" {
		cursor += "\n    integer_unit: " + unit
	}
	cfg := strings.Replace(string(b), "column: updated_at\n    tiebreaker: id", cursor, 1)
	if err := os.WriteFile(e.cfg, []byte(cfg), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// requireLines fails the test for every wanted text the output lacks.
func requireLines(t *testing.T, what, out string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(out, want) {
			t.Errorf("%s lacks %q:\n%s", what, want, out)
		}
	}
}

// A bigint cursor of epoch milliseconds is read in milliseconds when
// integer_unit is not set; a contradicting integer_unit is refused by check
// and by a pass (a config error), naming the key, both units and a value.
func TestCheckIntegerCursorUnit(t *testing.T) {
	e := newEnv(t)
	withChannels(e, 30)
	e.useChannels(channelsQuery, "")
	r := e.checkRun(0)
	requireLines(t, "check of a millisecond cursor", r.stdout,
		"ok    source.cursor: update_at is an integer cursor in milliseconds, detected from its largest value 17",
		" UTC) (set source.cursor.integer_unit to fix it)", "ok    source: 30 rows to sync", "no row is after this pass's upper bound")
	// The pass reads all 30, and its checkpoint (the newest, c1) is shown
	// with its time, by the pass and by status.
	o := e.once(0)
	requireLines(t, "the pass", o.stdout, "30 imported", " UTC), key c1\n")
	st := e.run("status", "--config", e.cfg)
	requireLines(t, "status", st.stdout, "cursor 17", " UTC), key c1\n")

	e.useChannels(channelsQuery, "seconds")
	r = e.checkRun(1)
	requireLines(t, "check with integer_unit: seconds", r.stdout,
		`FAIL  source.cursor.integer_unit: "seconds", but the cursor column "update_at" holds milliseconds`, "set integer_unit: milliseconds")
	o = e.once(2)
	requireLines(t, "once with integer_unit: seconds", o.stderr, `source.cursor.integer_unit: "seconds", but the cursor column "update_at" holds milliseconds`)
}

// A cursor whose rows all lie after the pass's upper bound (a DATETIME in
// a zone ahead of the database clock) fails check, naming the likely cause
// and the key, where it used to report 0 rows and pass.
func TestCheckCursorBeyondTheUpperBound(t *testing.T) {
	e := newEnv(t)
	insertShapes(e)
	r := e.checkRun(0)
	requireLines(t, "check of a healthy cursor", r.stdout, "ok    source.cursor: updated_at runs from ", "no row is after this pass's upper bound")
	e.exec("UPDATE chat_groups SET updated_at = updated_at + INTERVAL 5 HOUR")
	r = e.checkRun(1)
	requireLines(t, "check of future-dated rows", r.stdout,
		"FAIL  source.cursor: all of the rows (3) have a updated_at after this pass's upper bound", "time zone", "time_zone=", "source.dsn")
}

// Names unique only per team, used as guid, fail check with DUPLICATE_KEY,
// the count, examples with the rows' keys, and a unique key to use.
func TestCheckDuplicateGuids(t *testing.T) {
	e := newEnv(t)
	withChannels(e, 30)
	e.useChannels(strings.Replace(channelsQuery, "CONCAT(team_id, '-', name) AS guid", "name AS guid", 1), "")
	r := e.checkRun(1)
	// seq 1..30: town-square-0 has rows 1, 2; -1 to -9 three rows each; -10 row 30 alone.
	requireLines(t, "check of names unique per team", r.stdout,
		"FAIL  source.query: DUPLICATE_KEY: 10 guids are each the guid of more than one row (29 rows in all)", `"town-square-1" (3 rows, keys c3 … c5)`,
		"CONCAT(team_id, '-', name) AS guid")
	e.useChannels(channelsQuery, "")
	r = e.checkRun(0)
	requireLines(t, "check of a unique guid", r.stdout, "ok    source.query: every guid belongs to one row")
}

// A raw enum selected as type makes every sampled row invalid for one
// reason: check fails, naming the field and the value.
func TestCheckMappingFailsEveryRow(t *testing.T) {
	e := newEnv(t)
	withChannels(e, 30)
	e.useChannels(strings.Replace(channelsQuery, "CASE type WHEN 'O' THEN 'public' ELSE 'private' END AS type", "type", 1), "")
	r := e.checkRun(1)
	requireLines(t, "check of a raw enum type", r.stdout,
		`FAIL  source.query: 5 of 5 sampled rows are invalid for the same reason, type: must be public, password or private, got "`,
		"Fix the column type in source.query")
	if strings.Contains(r.stdout, "all checks passed") {
		t.Errorf("check passes a mapping that fails every row:\n%s", r.stdout)
	}
}

// The NULL-cursor hint names the user's own cursor column.
func TestCheckNullCursorNamesTheColumn(t *testing.T) {
	e := newEnv(t)
	withChannels(e, 3)
	e.exec("ALTER TABLE channels MODIFY update_at BIGINT NULL")
	e.exec("UPDATE channels SET update_at = NULL WHERE id = 'c1'")
	e.useChannels(channelsQuery, "")
	r := e.checkRun(0)
	requireLines(t, "check of a NULL update_at", r.stdout, "warn  source: 1 row(s) have a NULL update_at", "COALESCE(update_at, ")
	if strings.Contains(r.stdout, "updated_at") || strings.Contains(r.stdout, "created_at") {
		t.Errorf("check names columns the query does not have:\n%s", r.stdout)
	}
}

// check calls the keyset read ok only when a page is read in index order
// of (cursor, tiebreaker); otherwise it warns with the index to add and the
// rows each page sorts.
func TestCheckPlanOrder(t *testing.T) {
	e := newEnv(t)
	withChannels(e, 20000)
	// Most channels archived: the soft-delete index looks selective.
	e.exec("UPDATE channels SET delete_at = update_at WHERE CAST(SUBSTRING(id, 2) AS UNSIGNED) % 50 != 0")
	e.exec("ANALYZE TABLE channels")
	e.useChannels(channelsQuery, "")
	r := e.checkRun(0)
	requireLines(t, "check with the soft-delete index chosen", r.stdout,
		"warn  source: the keyset read is not in index order of (update_at, id): the database uses the index idx_delete_at, which is not on (update_at, id)",
		"each page of a pass reads and sorts about ", "CREATE INDEX channels_update_at_id ON channels (update_at, id);")
	if strings.Contains(r.stdout, "ok    source: the keyset read uses the index") {
		t.Errorf("check calls a sorting plan ok:\n%s", r.stdout)
	}

	e.useChannels(strings.Replace(channelsQuery, "update_at\nFROM", "GREATEST(update_at, delete_at) AS update_at\nFROM", 1), "")
	r = e.checkRun(0)
	requireLines(t, "check with an expression cursor", r.stdout, "warn  source: the keyset read is not in index order of (update_at, id): the cursor or the tiebreaker is an expression")

	e.useChannels(strings.Replace(channelsQuery, " WHERE delete_at = 0", "", 1), "")
	e.exec("ALTER TABLE channels DROP INDEX idx_delete_at")
	r = e.checkRun(0)
	requireLines(t, "check with no index", r.stdout, "no index is used, every page scans channels", "CREATE INDEX channels_update_at_id ON channels (update_at, id);")

	e.exec("ALTER TABLE channels ADD INDEX idx_keyset (update_at, id)")
	e.useChannels(channelsQuery, "")
	r = e.checkRun(0)
	requireLines(t, "check with the index", r.stdout, "ok    source: the keyset read uses the index idx_keyset of channels in (update_at, id) order, without sorting")
}

func TestReadableCheckpoint(t *testing.T) {
	for _, tc := range []struct{ raw, unit, want string }{
		{`{"cursor":{"kind":"int","value":"1733131200000"},"key":{"kind":"text","value":"c12"}}`, "",
			"cursor 1733131200000 (2024-12-02 09:20:00 UTC), key c12"},
		{`{"cursor":{"kind":"int","value":"1733131200"},"key":{"kind":"int","value":"7"}}`, "seconds",
			"cursor 1733131200 (2024-12-02 09:20:00 UTC), key 7"},
		{`{"cursor":{"kind":"text","value":"2024-12-02 09:20:00"},"key":{"kind":"int","value":"7"}}`, "", "cursor 2024-12-02 09:20:00, key 7"},
		{`{"cursor":{"kind":"int","value":"5"},"key":{"kind":"none"}}`, "", "cursor 5 (rows after it)"},
	} {
		if got := readableCheckpoint([]byte(tc.raw), tc.unit); got != tc.want {
			t.Errorf("readableCheckpoint(%s, %q) = %q, want %q", tc.raw, tc.unit, got, tc.want)
		}
	}
}
