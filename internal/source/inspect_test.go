package source

import (
	"context"
	"errors"
	"strconv"
	"testing"
)

// Rows whose cursor is NULL are counted, and are indeed the rows a pass
// never reads.
func TestNullCursors(t *testing.T) {
	db := newDB(t, groupsSchema+"\nALTER TABLE chat_groups MODIFY updated_at DATETIME(6) NULL;")
	mustExec(t, db.root, `INSERT INTO chat_groups (guid, title, updated_at) VALUES
		('a', 'A', '2024-01-01'), ('b', 'B', NULL), ('c', 'C', '2024-01-02'), ('d', 'D', NULL), ('e', 'E', NULL)`)
	s := openSource(t, groupsConfig(db.reader))
	ctx := context.Background()
	n, err := s.NullCursors(ctx)
	if err != nil || n != 3 {
		t.Errorf("NullCursors = %d, %v; want 3", n, err)
	}
	if got := keys(readAll(t, s, nil, upperBound(t, s), 10)); len(got) != 2 {
		t.Errorf("a pass reads %v; want the 2 rows with a cursor", got)
	}

	// SQLite, through the same wrapping.
	dsn, _ := newSQLite(t, `CREATE TABLE chat_groups (id INTEGER PRIMARY KEY, title TEXT, updated_at TEXT);
		INSERT INTO chat_groups VALUES (1, 'A', NULL), (2, 'B', '2024-01-01 00:00:00.000');`)
	ls := openSource(t, Config{Driver: DriverSQLite, DSN: dsn, Query: "SELECT id, title, updated_at FROM chat_groups -- all",
		Cursor: "updated_at", Tiebreaker: "id"})
	if n, err := ls.NullCursors(ctx); err != nil || n != 1 {
		t.Errorf("SQLite NullCursors = %d, %v; want 1", n, err)
	}
}

// ExplainPage tells an index range scan from a full scan, and names the
// table and columns behind the query's aliases.
func TestExplainPage(t *testing.T) {
	const fill = `INSERT INTO chat_groups (guid, title, kind, created_at, updated_at)
		SELECT CONCAT('g', seq), CONCAT('Group ', seq), 'public', '2024-01-01', '2024-01-01' + INTERVAL seq SECOND FROM seq_1_to_2000`
	aliased := Config{Driver: DriverMySQL, Cursor: "changed", Tiebreaker: "gid",
		Query: "SELECT g.id AS gid, g.guid, g.title AS name, g.updated_at AS changed, u.name AS owner_name\nFROM chat_groups AS g LEFT JOIN users u ON u.uid = g.owner_uid"}
	tests := []struct {
		name      string
		schema    string
		cfg       func(dsn string) Config
		rows      int
		full, mat bool
		base      [3]string // table, cursor, tiebreaker
	}{
		{"index, 2000 rows", groupsSchema, groupsConfig, 2000, false, false, [3]string{"chat_groups", "updated_at", "id"}},
		{"no index", groupsSchema + "\nALTER TABLE chat_groups DROP INDEX idx_updated;", groupsConfig, 2000, true, false, [3]string{"chat_groups", "updated_at", "id"}},
		// A small table with the index is not mistaken for a full scan,
		// nor is a small one without it missed.
		{"index, 3 rows", groupsSchema, groupsConfig, 3, false, false, [3]string{"chat_groups", "updated_at", "id"}},
		{"no index, 3 rows", groupsSchema + "\nALTER TABLE chat_groups DROP INDEX idx_updated;", groupsConfig, 3, true, false, [3]string{"chat_groups", "updated_at", "id"}},
		{"aliases, no index", groupsSchema + "\nALTER TABLE chat_groups DROP INDEX idx_updated;", func(dsn string) Config {
			c := aliased
			c.DSN = dsn
			return c
		}, 2000, true, false, [3]string{"chat_groups", "updated_at", "id"}},
		{"not mergeable", groupsSchema, func(dsn string) Config {
			c := groupsConfig(dsn)
			c.Query = "SELECT DISTINCT g.id, g.guid, g.title, g.updated_at FROM chat_groups g"
			return c
		}, 2000, true, true, [3]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := newDB(t, tt.schema)
			mustExec(t, db.root, fill+"\nLIMIT "+strconv.Itoa(tt.rows))
			mustExec(t, db.root, "ANALYZE TABLE chat_groups, users")
			s := openSource(t, tt.cfg(db.reader))
			upper := upperBound(t, s)
			page, err := s.ReadPage(context.Background(), nil, upper, 1)
			if err != nil || len(page) != 1 {
				t.Fatalf("first row: %v %v", page, err)
			}
			// The page of a pass that has caught up: after the upper bound.
			plan, err := s.ExplainPage(context.Background(), Position{Cursor: upper, Key: page[0].Key}, upper, 100)
			if err != nil {
				t.Fatal(err)
			}
			if plan.FullScan() != tt.full || plan.Materialized != tt.mat {
				t.Errorf("FullScan() = %t, Materialized = %t; want %t, %t: %+v", plan.FullScan(), plan.Materialized, tt.full, tt.mat, plan)
			}
			if got := [3]string{plan.BaseTable, plan.CursorColumn, plan.TiebreakerColumn}; got != tt.base {
				t.Errorf("base table and columns %q, want %q: %+v", got, tt.base, plan)
			}
			if !tt.mat && plan.Table != "g" {
				t.Errorf("Table = %q, want the query's alias g: %+v", plan.Table, plan)
			}
		})
	}

	dsn, _ := newSQLite(t, `CREATE TABLE chat_groups (id INTEGER PRIMARY KEY, updated_at TEXT)`)
	ls := openSource(t, Config{Driver: DriverSQLite, DSN: dsn, Query: "SELECT * FROM chat_groups", Cursor: "updated_at", Tiebreaker: "id"})
	if _, err := ls.ExplainPage(context.Background(), Position{}, Value{Kind: KindText, Text: "x"}, 1); !errors.Is(err, ErrNoPlan) {
		t.Errorf("SQLite ExplainPage: %v, want ErrNoPlan", err)
	}
}

func TestOrderByColumns(t *testing.T) {
	tests := []struct {
		name, note string
		want       [4]string
	}{
		{"MariaDB, aliased", "select `d`.`g`.`id` AS `id` from `d`.`chat_groups` `g` left join `d`.`users` `u` on(`d`.`u`.`uid` = `d`.`g`.`owner_uid`) " +
			"where `d`.`g`.`updated_at` > 'x`y'' order by ' order by `d`.`g`.`updated_at`,`d`.`g`.`id` limit 100",
			[4]string{"g", "chat_groups", "updated_at", "id"}},
		{"MySQL 8, no alias", "/* select#1 */ select `d`.`chat_groups`.`id` AS `id` from `d`.`chat_groups` where (`d`.`chat_groups`.`ts` <= ?) " +
			"order by `d`.`chat_groups`.`ts`,`d`.`chat_groups`.`id` limit ?",
			[4]string{"chat_groups", "chat_groups", "ts", "id"}},
		{"quoted names", "select 1 from `d`.`odd``table` `o` order by `d`.`o`.`upd at`,`d`.`o`.`k` limit 1",
			[4]string{"o", "odd`table", "upd at", "k"}},
		{"expression", "select 1 from `d`.`t` order by coalesce(`d`.`t`.`a`,`d`.`t`.`b`),`d`.`t`.`id` limit 1",
			[4]string{}},
		{"two tables", "select 1 from `d`.`t` join `d`.`u` order by `d`.`t`.`a`,`d`.`u`.`id` limit 1", [4]string{}},
		{"derived", "select 1 from (select 1) `cometsync_src` order by `cometsync_src`.`a`,`cometsync_src`.`id` limit 1",
			[4]string{"cometsync_src", "cometsync_src", "a", "id"}},
		{"no order by", "select 1", [4]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, tb, c, k := orderByColumns(tt.note)
			if got := [4]string{a, tb, c, k}; got != tt.want {
				t.Errorf("orderByColumns = %q, want %q", got, tt.want)
			}
		})
	}
}
