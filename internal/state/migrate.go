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
	// A new file gets the current tables; an old one keeps its own, which
	// the steps below bring up to date.
	if _, err := tx.Exec(schema); err != nil {
		return err
	}
	if from < 2 {
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
