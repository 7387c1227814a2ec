package source

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/stdlib"
)

// pgPlanNode is one node of EXPLAIN (FORMAT JSON).
type pgPlanNode struct {
	NodeType  string       `json:"Node Type"`
	Relation  string       `json:"Relation Name"`
	Alias     string       `json:"Alias"`
	IndexName string       `json:"Index Name"`
	SortKey   []string     `json:"Sort Key"`
	PlanRows  float64      `json:"Plan Rows"`
	Plans     []pgPlanNode `json:"Plans"`
}

// pgMaterializing are the nodes by which PostgreSQL builds the query's rows
// before the keyset can apply: it could not pull the query up.
var pgMaterializing = map[string]bool{"Subquery Scan": true, "Aggregate": true, "Group": true, "Unique": true,
	"WindowAgg": true, "SetOp": true, "Recursive Union": true, "CTE Scan": true}

// explain reads the tables and columns behind the cursor and the
// tiebreaker from the page query's row description (PostgreSQL names the
// table column a result column is), that table's indexes from the catalog,
// and the plan from EXPLAIN (FORMAT JSON).
func (*postgresDialect) explain(ctx context.Context, s *Source, after Position, upper Value, limit int) (PagePlan, error) {
	_, args := s.keyset(&after, upper)
	args = append(args, limit)
	q := s.PageSQL(true)
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return PagePlan{}, fmt.Errorf("explain: %w", s.lost(err))
	}
	defer conn.Close()
	var raw string
	if err := conn.QueryRowContext(ctx, "EXPLAIN (FORMAT JSON) "+q, args...).Scan(&raw); err != nil {
		return PagePlan{}, fmt.Errorf("explain: %w", s.lost(err))
	}
	var out []struct{ Plan pgPlanNode }
	if err := json.Unmarshal([]byte(raw), &out); err != nil || len(out) == 0 {
		return PagePlan{}, fmt.Errorf("explain: unexpected EXPLAIN output %.200q (%v)", raw, err)
	}
	var plan PagePlan
	table, err := s.pgOrderColumns(ctx, conn, q, &plan)
	if err != nil {
		return PagePlan{}, fmt.Errorf("explain: %w", s.lost(err))
	}
	pgReadPlan(out[0].Plan, table, &plan)
	if plan.Materialized {
		plan.BaseTable, plan.CursorColumn, plan.TiebreakerColumn, plan.Indexes = "", "", "", nil
	}
	return plan, nil
}

// pgReadPlan walks the plan: the scan of table (else the first scan) gives
// Table, Access, Key and Rows; a sort anywhere is a sort of the page.
func pgReadPlan(root pgPlanNode, table string, plan *PagePlan) {
	var scan *pgPlanNode
	var walk func(n *pgPlanNode)
	walk = func(n *pgPlanNode) {
		switch {
		case n.NodeType == "Sort" || n.NodeType == "Incremental Sort":
			plan.sorted = true
			plan.Extra = strings.TrimSpace(plan.Extra + " " + n.NodeType + " (" + strings.Join(n.SortKey, ", ") + ")")
		case pgMaterializing[n.NodeType]:
			plan.Materialized = true
		case n.Relation != "" && (scan == nil || n.Relation == table && scan.Relation != table):
			scan = n
		}
		for i := range n.Plans {
			walk(&n.Plans[i])
		}
		// A bitmap heap scan names its index in its child.
		if n == scan && n.IndexName == "" {
			for _, c := range n.Plans {
				if c.IndexName != "" {
					plan.Key = c.IndexName
				}
			}
		}
	}
	walk(&root)
	if scan != nil {
		plan.Table, plan.Access, plan.Rows = scan.Alias, scan.NodeType, int64(scan.PlanRows)
		if scan.IndexName != "" {
			plan.Key = scan.IndexName
		}
	}
}

// pgOrderColumns fills BaseTable, CursorColumn, TiebreakerColumn and
// Indexes when the cursor and the tiebreaker are plain columns of one table,
// and returns that table's name as plans name it ("" otherwise).
func (s *Source) pgOrderColumns(ctx context.Context, conn *sql.Conn, q string, plan *PagePlan) (string, error) {
	var table uint32
	var attrs [2]uint16
	err := conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("not a pgx connection: %T", dc)
		}
		sd, err := c.Conn().PgConn().Prepare(ctx, "", q, nil)
		if err != nil {
			return err
		}
		names := make([]string, len(sd.Fields))
		for i, f := range sd.Fields {
			names[i] = f.Name
		}
		cur, key := sd.Fields[indexOf(names, s.cfg.Cursor)], sd.Fields[indexOf(names, s.cfg.Tiebreaker)]
		if cur.TableOID != 0 && cur.TableOID == key.TableOID {
			table, attrs = cur.TableOID, [2]uint16{cur.TableAttributeNumber, key.TableAttributeNumber}
		}
		return nil
	})
	if err != nil || table == 0 {
		return "", err
	}
	var relname string
	err = conn.QueryRowContext(ctx, `SELECT c.oid::regclass::text, c.relname,
			(SELECT attname FROM pg_attribute WHERE attrelid = c.oid AND attnum = $2),
			(SELECT attname FROM pg_attribute WHERE attrelid = c.oid AND attnum = $3)
		FROM pg_class c WHERE c.oid = $1`, table, int(attrs[0]), int(attrs[1])).
		Scan(&plan.BaseTable, &relname, &plan.CursorColumn, &plan.TiebreakerColumn)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	rows, err := conn.QueryContext(ctx, `SELECT i.relname, COALESCE(a.attname, '')
		FROM pg_index x
		JOIN pg_class i ON i.oid = x.indexrelid
		CROSS JOIN LATERAL unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
		LEFT JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
		WHERE x.indrelid = $1 AND k.ord <= x.indnkeyatts
		ORDER BY i.relname, k.ord`, table)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	plan.Indexes = map[string][]string{}
	for rows.Next() {
		var name, col string
		if err := rows.Scan(&name, &col); err != nil {
			return "", err
		}
		plan.Indexes[name] = append(plan.Indexes[name], col)
	}
	return relname, rows.Err()
}
