package binlog

import (
	"context"
	"fmt"
	"strings"
)

// Finding is one thing Check looked at: whether it is right, what it is,
// what was found, and the fix (a GRANT, a SET GLOBAL and my.cnf line).
type Finding struct {
	OK     bool
	What   string
	Detail string
	Fix    string
}

// Check lists what the server and the user need for the feed: the binary
// log on, binlog_format=ROW, binlog_row_image=FULL, and the privileges
// REPLICATION SLAVE, REPLICATION CLIENT (MariaDB: BINLOG MONITOR) and
// SELECT on each table. A server it cannot reach is one failed Finding.
func Check(ctx context.Context, cfg Config) []Finding {
	c, err := open(ctx, cfg)
	if err == nil {
		err = c.db.PingContext(ctx)
		if err != nil {
			c.close()
		}
	}
	if err != nil {
		return []Finding{{What: "connect", Detail: err.Error(), Fix: "check the source DSN: address, user and password"}}
	}
	defer c.close()
	var out []Finding

	var logBin int
	var format, image string
	err = c.db.QueryRowContext(ctx, "SELECT @@GLOBAL.log_bin, @@GLOBAL.binlog_format, @@GLOBAL.binlog_row_image").Scan(&logBin, &format, &image)
	if err != nil {
		return append(out, Finding{What: "server settings", Detail: "read log_bin, binlog_format, binlog_row_image: " + err.Error()})
	}
	out = append(out, Finding{OK: logBin == 1, What: "binary log (log_bin)",
		Detail: map[bool]string{true: "on", false: "off: the server writes no binary log"}[logBin == 1],
		Fix:    "start the server with log_bin (my.cnf [mysqld]: log_bin = binlog, server_id = 1); it needs a restart"})

	f := Finding{OK: strings.EqualFold(format, "ROW"), What: "binlog_format", Detail: format,
		Fix: "SET GLOBAL binlog_format = 'ROW'; and in my.cnf [mysqld]: binlog_format = ROW"}
	if !f.OK {
		f.Detail = format + ": the feed needs ROW, with the rows' values"
		if c.flavor == MariaDB && strings.EqualFold(format, "MIXED") {
			f.Detail += " (MIXED is MariaDB's default)"
		}
	}
	out = append(out, f)
	out = append(out, Finding{OK: strings.EqualFold(image, "FULL"), What: "binlog_row_image", Detail: image,
		Fix: "SET GLOBAL binlog_row_image = 'FULL'; and in my.cnf [mysqld]: binlog_row_image = FULL"})

	out = append(out, c.checkPrivileges(ctx)...)
	return out
}

// checkPrivileges checks the global privileges of the current user and
// SELECT on each table (by selecting from it).
func (c *conn) checkPrivileges(ctx context.Context) []Finding {
	var user string
	if err := c.db.QueryRowContext(ctx, "SELECT CURRENT_USER()").Scan(&user); err != nil {
		return []Finding{{What: "privileges", Detail: "read the current user: " + err.Error()}}
	}
	grantee := user
	if at := strings.LastIndex(user, "@"); at > 0 {
		grantee = fmt.Sprintf("'%s'@'%s'", user[:at], user[at+1:])
	}
	have := map[string]bool{}
	rows, err := c.db.QueryContext(ctx, "SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = ?", grantee)
	if err != nil {
		return []Finding{{What: "privileges", Detail: "read the user's privileges: " + err.Error()}}
	}
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			rows.Close()
			return []Finding{{What: "privileges", Detail: "read the user's privileges: " + err.Error()}}
		}
		have[strings.ToUpper(p)] = true
	}
	rows.Close()

	var out []Finding
	slave := have["REPLICATION SLAVE"] || have["ALL PRIVILEGES"]
	out = append(out, priv(slave, "REPLICATION SLAVE", "read the binary log", grantee, "REPLICATION SLAVE"))
	client := have["REPLICATION CLIENT"] || have["BINLOG MONITOR"] || have["SUPER"] || have["ALL PRIVILEGES"]
	name := "REPLICATION CLIENT"
	if c.flavor == MariaDB {
		name = "BINLOG MONITOR (REPLICATION CLIENT)"
	}
	out = append(out, priv(client, name, "read the binary log position", grantee, "REPLICATION CLIENT"))

	for _, t := range c.cfg.Tables {
		q := fmt.Sprintf("SELECT 1 FROM %s.%s LIMIT 0", quote(t.Schema), quote(t.Name))
		rows, err := c.db.QueryContext(ctx, q)
		if err == nil {
			rows.Close()
		}
		f := Finding{OK: err == nil, What: "SELECT on " + t.Schema + "." + t.Name, Detail: "granted",
			Fix: fmt.Sprintf("GRANT SELECT ON %s.* TO %s;", quote(t.Schema), grantee)}
		if err != nil {
			f.Detail = err.Error()
		}
		out = append(out, f)
	}
	return out
}

func priv(ok bool, name, why, grantee, grant string) Finding {
	f := Finding{OK: ok, What: "privilege " + name, Detail: "granted",
		Fix: fmt.Sprintf("GRANT %s ON *.* TO %s;", grant, grantee)}
	if !ok {
		f.Detail = "missing: needed to " + why
	}
	return f
}

func quote(name string) string { return "`" + strings.ReplaceAll(name, "`", "``") + "`" }
