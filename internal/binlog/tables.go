package binlog

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/go-mysql-org/go-mysql/replication"
	"go.uber.org/zap"
)

// errSchema marks a table whose rows the feed cannot key: the rows event
// is logged and skipped rather than stopping the feed.
var errSchema = errors.New("binlog: cannot find the key column")

// columns is what the feed knows of a table: its stream's name and where
// its key column is.
type columns struct {
	name     string // the Table.Name the keys are reported under
	count    int    // columns in the current schema
	key      int    // index of the key column
	unsigned bool   // the key column is an UNSIGNED integer
}

// tables resolves the key column of the rows events of the tables of a
// Config, from the current schema, cached until a DDL statement names the
// table.
type tables struct {
	c      *conn
	byName map[string]Table // schema.name -> Table
	cache  map[string]*columns
	warned map[string]uint64 // schema.name -> the column count warned about
}

func newTables(c *conn) *tables {
	t := &tables{c: c, byName: map[string]Table{}, cache: map[string]*columns{}, warned: map[string]uint64{}}
	for _, tb := range c.cfg.Tables {
		t.byName[tableKey(tb.Schema, tb.Name)] = tb
	}
	return t
}

// load reads a table's columns from information_schema.
func (t *tables) load(ctx context.Context, tb Table) (*columns, error) {
	rows, err := t.c.db.QueryContext(ctx, `SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, tb.Schema, tb.Name)
	if err != nil {
		return nil, fmt.Errorf("binlog: read the columns of %s.%s: %w", tb.Schema, tb.Name, err)
	}
	defer rows.Close()
	cols := &columns{name: tb.Name, key: -1}
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return nil, fmt.Errorf("binlog: read the columns of %s.%s: %w", tb.Schema, tb.Name, err)
		}
		if strings.EqualFold(name, tb.KeyColumn) {
			cols.key = cols.count
			cols.unsigned = strings.Contains(strings.ToLower(typ), "unsigned")
		}
		cols.count++
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("binlog: read the columns of %s.%s: %w", tb.Schema, tb.Name, err)
	}
	if cols.count == 0 {
		return nil, fmt.Errorf("%w: table %s.%s not found (or no SELECT on it)", errSchema, tb.Schema, tb.Name)
	}
	if cols.key < 0 {
		return nil, fmt.Errorf("%w: table %s.%s has no column %q (the stream's key column)", errSchema, tb.Schema, tb.Name, tb.KeyColumn)
	}
	return cols, nil
}

// keyIndex returns where the key is in the rows of e, and the stream's
// table name; ok is false for a table not in the Config.
func (t *tables) keyIndex(ctx context.Context, e *replication.RowsEvent) (idx int, cols *columns, ok bool, err error) {
	k := tableKey(string(e.Table.Schema), string(e.Table.Table))
	tb, ok := t.byName[k]
	if !ok {
		return 0, nil, false, nil
	}
	cols = t.cache[k]
	if cols == nil || cols.count != int(e.ColumnCount) {
		// First use, or the schema changed since: read it again.
		if cols, err = t.load(ctx, tb); err != nil {
			return 0, nil, true, err
		}
		t.cache[k] = cols
	}
	// The event's own column names (binlog_row_metadata=FULL) beat the
	// current schema, which may be newer than an event being caught up on.
	if names := e.Table.ColumnNameString(); len(names) == int(e.ColumnCount) {
		for i, n := range names {
			if strings.EqualFold(n, tb.KeyColumn) {
				return i, cols, true, nil
			}
		}
	}
	if cols.count != int(e.ColumnCount) && t.warned[k] != e.ColumnCount {
		t.warned[k] = e.ColumnCount
		t.c.log.Warn("a rows event has another column count than the table has now (an ALTER TABLE since?); taking the key column at its current place",
			zap.String("table", k), zap.Uint64("event_columns", e.ColumnCount), zap.Int("table_columns", cols.count),
			zap.String("key_column", tb.KeyColumn), zap.String("hint", "binlog_row_metadata=FULL lets the feed find the key by name"))
	}
	if cols.key >= int(e.ColumnCount) {
		return 0, cols, true, fmt.Errorf("%w: %s: the key column %q is column %d now, but the event has %d columns",
			errSchema, k, tb.KeyColumn, cols.key+1, e.ColumnCount)
	}
	return cols.key, cols, true, nil
}

// changed forgets the columns of every table a DDL statement names.
func (t *tables) changed(query string) {
	q := strings.ToLower(query)
	for k, tb := range t.byName {
		if strings.Contains(q, strings.ToLower(tb.Name)) {
			delete(t.cache, k)
		}
	}
}
