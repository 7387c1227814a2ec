package state

import (
	"database/sql"
	"fmt"
)

// migrate brings a state of format from (0 for a new file) to
// schemaVersion in one transaction: a crash leaves the old format, which
// the next Open migrates again. Every step keeps what the state holds
// (checkpoints, hashes, row errors): an upgrade never re-sends anything.
func migrate(db *sql.DB, from int) error {
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.Exec(schema); err != nil {
		return err
	}
	if from >= 1 && from < 2 {
		// Format 2 records the row that owns each guid; deliveries of
		// format 1 have no owner yet (NULL) and get one when next delivered.
		has, err := hasColumn(tx, "delivered", "row_key")
		if err != nil {
			return err
		}
		if !has {
			if _, err := tx.Exec(`ALTER TABLE delivered ADD COLUMN row_key TEXT`); err != nil {
				return fmt.Errorf("migrate to format 2: %w", err)
			}
		}
	}
	if from >= 1 && from < 3 {
		// Format 3 has tables per stream; format 2's are the groups
		// stream's, renamed in place (no row is copied), with their meta
		// keys. The key index is built again under its new name by Open.
		for _, q := range []string{
			`DROP INDEX IF EXISTS delivered_guid`,
			`ALTER TABLE delivered RENAME TO groups_delivered`,
			`ALTER TABLE groups_delivered RENAME COLUMN guid TO object_key`,
			`ALTER TABLE row_errors RENAME TO groups_row_errors`,
			`ALTER TABLE groups_row_errors RENAME COLUMN guid TO object_key`,
			`UPDATE meta SET key = 'groups.' || key WHERE key IN ('checkpoint', 'fingerprint', 'full_pass', 'synced_until')`,
		} {
			if _, err := tx.Exec(q); err != nil {
				return fmt.Errorf("migrate to format 3: %s: %w", q, err)
			}
		}
	}
	for _, name := range Streams {
		if _, err := tx.Exec(streamSQL(name, streamSchema)); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
		return err
	}
	return tx.Commit()
}

// hasColumn reports whether table has the column.
func hasColumn(tx *sql.Tx, table, column string) (bool, error) {
	rows, err := tx.Query(`SELECT name FROM pragma_table_info(?)`, table)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return false, err
		}
		if name == column {
			return true, nil
		}
	}
	return false, rows.Err()
}
