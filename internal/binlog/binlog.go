// Package binlog is the MySQL/MariaDB binary-log feed: it reads the
// server's binlog as a replica does (go-mysql's replication package) and
// hands over, per table of interest, the keys of the rows that
// transactions inserted, updated or deleted, with the position to resume
// from.
//
// The contract:
//
//   - Position is where the feed is: a GTID set where the server has GTIDs
//     (MariaDB "domain-server-seq,...", MySQL "uuid:ranges"), and the
//     binlog file and offset. Stream resumes by GTID when the Position has
//     one, by file and offset otherwise. It is JSON-serialisable.
//   - Current reads the server's position now; Exists says whether the
//     server still has its binlog from a Position (false once purged).
//   - Stream delivers Batches in order to a handler it calls synchronously
//     (backpressure). A Batch with Commit=true ends at a transaction
//     boundary: its Position is the position after the last commit in it,
//     safe to persist once the batch is acknowledged; a resume from it
//     neither skips nor repeats a transaction. Small transactions are
//     coalesced (up to CoalesceKeys keys, or CoalesceWindow after the first
//     commit in the batch). A transaction with more than SliceKeys keys is
//     handed over in slices with Commit=false, whose Position is the last
//     commit before them (never to be persisted), and its last slice comes
//     with Commit=true; memory stays flat however big the transaction.
//     A batch may have no keys: it moves the position past transactions
//     on other tables (at most about once a second).
//   - Keys are reported under Table.Name (so two listed tables need two
//     names). Config.ServerID must differ from every other replica's: the
//     server drops the older of two connections with one server_id.
//   - Stream reconnects, with backoff, when the connection drops or the
//     server restarts, from the last position handed over (keys of a
//     transaction cut by the drop are read again, never lost). It returns
//     an error wrapping ErrPurged when the binlog from the start is gone,
//     ctx.Err() on cancel, and nil once it reaches until.
//   - Rows of tables not in Config.Tables are not decoded. The key column
//     is found by name in the table's current columns
//     (information_schema), re-read after a DDL statement on the table or
//     when an event's column count differs; with binlog_row_metadata=FULL
//     the event's own column names are used instead.
//   - Check lists what a server lacks for the feed, with the fix.
package binlog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/go-sql-driver/mysql"
	"go.uber.org/zap"
)

// The flavors of Config.Flavor and Position.Flavor.
const (
	MySQL   = "mysql"
	MariaDB = "mariadb"
)

// The actions counted in Batch.Events.
const (
	Insert = "insert"
	Update = "update"
	Delete = "delete"
)

// Bounds of a Batch (see the package doc).
const (
	CoalesceKeys   = 5000
	CoalesceWindow = 20 * time.Millisecond
	SliceKeys      = 10000
	// idleWindow is how long a batch that only moves the position (the
	// transactions were on other tables) may wait for more.
	idleWindow = time.Second
)

// ErrPurged means the server no longer has the binlog from the position
// asked for: a full resync is needed.
var ErrPurged = errors.New("the server no longer has the binary log from this position (purged)")

// Config says which server to read and what.
type Config struct {
	// DSN is a go-sql-driver/mysql DSN; user, password and address are
	// used (the database name is not).
	DSN string
	// ServerID is this replica's server_id, unique among the server's
	// replicas. Required.
	ServerID uint32
	// Flavor is MySQL, MariaDB or "" to detect it.
	Flavor string
	// Tables are the tables whose keys are wanted.
	Tables []Table
	// Log gets reconnects and schema trouble; nil is no logging.
	Log *zap.Logger
}

// Table is a stream's table and the column that keys its rows.
type Table struct {
	Schema, Name string
	KeyColumn    string
}

// Position is where the feed is in the server's binlog.
type Position struct {
	Flavor string `json:"flavor"`
	GTID   string `json:"gtid,omitempty"`
	File   string `json:"file,omitempty"`
	Offset uint32 `json:"offset,omitempty"`
}

// String is the position for status and logs.
func (p Position) String() string {
	file := ""
	if p.File != "" {
		file = p.File + ":" + strconv.FormatUint(uint64(p.Offset), 10)
	}
	switch {
	case p.GTID != "" && file != "":
		return "gtid " + p.GTID + " (" + file + ")"
	case p.GTID != "":
		return "gtid " + p.GTID
	case file != "":
		return file
	}
	return "(no position)"
}

// Batch is the keys of the rows that a run of events touched.
type Batch struct {
	// Keys are table name -> key values, deduplicated within the batch:
	// integers as int64 (uint64 above its range), text as string, binary
	// as []byte, other types as the driver gives them. An update that
	// changes the key gives the old key and the new.
	Keys map[string][]any
	// Events counts table -> action (Insert, Update, Delete) -> rows.
	Events map[string]map[string]int
	// Position is the resume point after this batch (see Commit).
	Position Position
	// Commit is true when the batch ends at a transaction boundary: the
	// Position may be persisted once the batch is acknowledged. False is a
	// slice of a big transaction: its Position is the last commit before
	// it and must not be persisted.
	Commit bool
	// EventTime is the newest event's timestamp (for lag).
	EventTime time.Time
}

// conn is a Config resolved against its server.
type conn struct {
	cfg    Config
	db     *sql.DB
	flavor string
	host   string
	port   uint16
	user   string
	pass   string
	log    *zap.Logger
}

// open checks cfg, connects for queries and detects the flavor.
func open(ctx context.Context, cfg Config) (*conn, error) {
	if cfg.ServerID == 0 {
		return nil, errors.New("binlog: server_id is required (a number unique among the server's replicas)")
	}
	if cfg.Flavor != "" && cfg.Flavor != MySQL && cfg.Flavor != MariaDB {
		return nil, fmt.Errorf("binlog: flavor %q: want %q, %q or empty to detect", cfg.Flavor, MySQL, MariaDB)
	}
	dsn, err := mysql.ParseDSN(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("binlog: dsn: %w", err)
	}
	if dsn.Net != "tcp" {
		return nil, fmt.Errorf("binlog: dsn: network %q: the binlog is read over tcp only", dsn.Net)
	}
	host, portStr, err := net.SplitHostPort(dsn.Addr)
	if err != nil {
		return nil, fmt.Errorf("binlog: dsn address %q: %w", dsn.Addr, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("binlog: dsn address %q: bad port", dsn.Addr)
	}
	q := dsn.Clone()
	q.DBName, q.MultiStatements = "", false
	db, err := sql.Open("mysql", q.FormatDSN())
	if err != nil {
		return nil, fmt.Errorf("binlog: %w", err)
	}
	db.SetMaxOpenConns(2)
	c := &conn{cfg: cfg, db: db, flavor: cfg.Flavor, host: host, port: uint16(port), user: dsn.User, pass: dsn.Passwd, log: cfg.Log}
	if c.log == nil {
		c.log = zap.NewNop()
	}
	if c.flavor == "" {
		var version string
		if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
			db.Close()
			return nil, fmt.Errorf("binlog: connect to %s: %w", dsn.Addr, err)
		}
		c.flavor = MySQL
		if strings.Contains(strings.ToLower(version), "mariadb") {
			c.flavor = MariaDB
		}
	}
	return c, nil
}

func (c *conn) close() { _ = c.db.Close() }

// Current returns the server's position now: its file and offset and, where
// it has GTIDs, its GTID set (MariaDB @@gtid_binlog_pos, MySQL
// @@gtid_executed with gtid_mode ON).
func Current(ctx context.Context, cfg Config) (Position, error) {
	c, err := open(ctx, cfg)
	if err != nil {
		return Position{}, err
	}
	defer c.close()
	return c.current(ctx)
}

func (c *conn) current(ctx context.Context) (Position, error) {
	p := Position{Flavor: c.flavor}
	file, offset, err := c.masterStatus(ctx)
	if err != nil {
		return Position{}, err
	}
	p.File, p.Offset = file, offset
	switch c.flavor {
	case MariaDB:
		err = c.db.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_binlog_pos").Scan(&p.GTID)
	default:
		var mode string
		if err = c.db.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_mode").Scan(&mode); err == nil && mode == "ON" {
			err = c.db.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_executed").Scan(&p.GTID)
			p.GTID = strings.ReplaceAll(p.GTID, "\n", "")
		}
	}
	if err != nil {
		return Position{}, fmt.Errorf("binlog: read the server's gtid position: %w", err)
	}
	return p, nil
}

// masterStatus is the binlog file and offset the server writes at.
func (c *conn) masterStatus(ctx context.Context) (string, uint32, error) {
	rows, err := c.db.QueryContext(ctx, "SHOW MASTER STATUS")
	if err != nil {
		// MySQL 8.4 has only the new name.
		var err2 error
		if rows, err2 = c.db.QueryContext(ctx, "SHOW BINARY LOG STATUS"); err2 != nil {
			return "", 0, fmt.Errorf("binlog: read the server's binlog position (needs REPLICATION CLIENT, MariaDB's BINLOG MONITOR): %w", err)
		}
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return "", 0, fmt.Errorf("binlog: binlog position: %w", err)
	}
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return "", 0, fmt.Errorf("binlog: binlog position: %w", err)
		}
		return "", 0, errors.New("binlog: the server's binary log is off (log_bin): start it with --log-bin and binlog_format=ROW")
	}
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return "", 0, fmt.Errorf("binlog: binlog position: %w", err)
	}
	off, err := strconv.ParseUint(string(vals[1]), 10, 32)
	if err != nil {
		return "", 0, fmt.Errorf("binlog: binlog position %q: %w", vals[1], err)
	}
	return string(vals[0]), uint32(off), rows.Err()
}

// syncer starts a binlog dump from p.
func (c *conn) syncer(p Position) (*replication.BinlogSyncer, *replication.BinlogStreamer, error) {
	wanted := map[string]bool{}
	for _, t := range c.cfg.Tables {
		wanted[tableKey(t.Schema, t.Name)] = true
	}
	bs := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID:         c.cfg.ServerID,
		Flavor:           c.flavor,
		Host:             c.host,
		Port:             c.port,
		User:             c.user,
		Password:         c.pass,
		Logger:           slogOf(c.log),
		HeartbeatPeriod:  10 * time.Second,
		ReadTimeout:      35 * time.Second,
		DisableRetrySync: true, // Stream reconnects itself, from a commit
		EventCacheCount:  256,  // events decoded ahead of the handler
		// Skip decoding the rows of the tables nobody asked for.
		RowsEventDecodeFunc: func(e *replication.RowsEvent, data []byte) error {
			pos, err := e.DecodeHeader(data)
			if err != nil {
				return err
			}
			if !wanted[tableKey(string(e.Table.Schema), string(e.Table.Table))] {
				return nil
			}
			return e.DecodeData(pos, data)
		},
	})
	var (
		st  *replication.BinlogStreamer
		err error
	)
	if p.GTID != "" {
		var set gomysql.GTIDSet
		if set, err = gomysql.ParseGTIDSet(c.flavor, p.GTID); err != nil {
			bs.Close()
			return nil, nil, fmt.Errorf("binlog: gtid %q: %w", p.GTID, err)
		}
		st, err = bs.StartSyncGTID(set)
	} else {
		st, err = bs.StartSync(gomysql.Position{Name: p.File, Pos: p.Offset})
	}
	if err != nil {
		bs.Close()
		return nil, nil, classify(fmt.Errorf("binlog: start reading the binlog at %s: %w", p, err))
	}
	return bs, st, nil
}

// classify wraps ErrPurged into a server error that says the binlog is
// gone (1236, ER_MASTER_FATAL_ERROR_READING_BINLOG, but for a server_id
// clash).
func classify(err error) error {
	var my *gomysql.MyError
	if errors.As(err, &my) && my.Code == gomysql.ER_MASTER_FATAL_ERROR_READING_BINLOG &&
		!strings.Contains(strings.ToLower(my.Message), "server_id") && !strings.Contains(strings.ToLower(my.Message), "server_uuid") {
		return fmt.Errorf("%w: %s", ErrPurged, my.Message)
	}
	return err
}

// Exists reports whether the server still has its binlog from p: it starts
// a dump there and sees whether the server sends events or refuses.
func Exists(ctx context.Context, cfg Config, p Position) (bool, error) {
	c, err := open(ctx, cfg)
	if err != nil {
		return false, err
	}
	defer c.close()
	bs, st, err := c.syncer(p)
	if errors.Is(err, ErrPurged) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer bs.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := st.GetEvent(ctx); err != nil {
		if err = classify(err); errors.Is(err, ErrPurged) {
			return false, nil
		}
		return false, fmt.Errorf("binlog: read the binlog at %s: %w", p, err)
	}
	return true, nil
}

func tableKey(schema, name string) string { return schema + "." + name }
