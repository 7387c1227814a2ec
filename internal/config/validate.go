package config

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/robfig/cron/v3"
)

// ValidationError is a key of the configuration with a bad or missing value.
type ValidationError struct {
	// Key is the dotted path, e.g. "cometchat.batch_size".
	Key string
	// Value is the offending value as the message shows it: strings quoted,
	// secrets (api_key, dsn) "***", "" for a missing value.
	Value string
	// Problem says what is wrong and what is allowed.
	Problem string
	// Line is the line of the file, when the error was found while
	// decoding it; 0 from Validate.
	Line int
}

// Error returns e.g. `config: cometchat.batch_size: 51 is out of range
// (1..50, CometChat's limit per import request)`.
func (e *ValidationError) Error() string { return "config: " + e.problem() }

// problem is the message without the "config: " prefix.
func (e *ValidationError) problem() string {
	var b strings.Builder
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	b.WriteString(e.Key)
	b.WriteString(": ")
	if e.Value != "" {
		b.WriteString(e.Value)
		b.WriteByte(' ')
	}
	b.WriteString(e.Problem)
	return b.String()
}

// ValidationErrors are several problems of one configuration, in the order
// of the file. errors.As finds the first as a *ValidationError.
type ValidationErrors []*ValidationError

// Error lists every problem, one a line.
func (e ValidationErrors) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "config: %d problems:", len(e))
	for _, ve := range e {
		b.WriteString("\n  ")
		b.WriteString(ve.problem())
	}
	return b.String()
}

// Unwrap returns each problem, for errors.As and errors.Is.
func (e ValidationErrors) Unwrap() []error {
	out := make([]error, len(e))
	for i, ve := range e {
		out[i] = ve
	}
	return out
}

// problems collects the problems of a configuration.
type problems []*ValidationError

// add records ve unless it is nil; it reports whether there was one.
func (p *problems) add(ve *ValidationError) bool {
	if ve == nil {
		return false
	}
	*p = append(*p, ve)
	return true
}

// err is nil without problems, the *ValidationError itself for one, and
// ValidationErrors for several.
func (p problems) err() error {
	switch len(p) {
	case 0:
		return nil
	case 1:
		return p[0]
	}
	return ValidationErrors(p)
}

func invalid(key, value, problem string) *ValidationError {
	return &ValidationError{Key: key, Value: value, Problem: problem}
}

func quote(s string) string {
	if n := 60; len(s) > n {
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n] + "…"
	}
	return strconv.Quote(s)
}

func secret(s string) string {
	if s == "" {
		return ""
	}
	return "***"
}

func oneOf(key, value string, allowed ...string) *ValidationError {
	for _, a := range allowed {
		if value == a {
			return nil
		}
	}
	return invalid(key, quote(value), "is not one of "+strings.Join(allowed, ", "))
}

func inRange(key string, v, lo, hi int, why string) *ValidationError {
	if v < lo || v > hi {
		return invalid(key, strconv.Itoa(v), fmt.Sprintf("is out of range (%d..%d%s)", lo, hi, why))
	}
	return nil
}

func atLeast(key string, v, lo int, why string) *ValidationError {
	if v < lo {
		return invalid(key, strconv.Itoa(v), fmt.Sprintf("must be at least %d%s", lo, why))
	}
	return nil
}

func positive(key string, d Duration) *ValidationError {
	if d <= 0 {
		return invalid(key, d.String(), "must be more than 0")
	}
	return nil
}

// Validate checks every value and returns every problem, in the order of
// the file: a *ValidationError for one, ValidationErrors for several. A
// value that cannot be checked because another is wrong (a DSN for an
// unknown driver) is not reported twice. It never puts a secret in a
// message.
func (c *Config) Validate() error {
	var p problems
	c.validateSource(&p)
	c.validateCometChat(&p)
	if strings.TrimSpace(c.State.Path) == "" {
		p.add(invalid("state.path", "", "is missing: name the local SQLite file that keeps the checkpoint, e.g. ./cometsync-state.db"))
	}
	p.add(atLeast("state.park_after", c.State.ParkAfter, 1, " attempt"))
	p.add(validateSchedule(c.Schedule))
	if c.ReconcileSchedule != "" {
		if ve := validateSchedule(c.ReconcileSchedule); ve != nil {
			ve.Key = "reconcile_schedule"
			p.add(ve)
		}
	}
	p.add(positive("shutdown_timeout", c.ShutdownTimeout))
	p.add(validateListen(c.HTTP.Listen))
	p.add(oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error"))
	p.add(oneOf("log.format", c.Log.Format, "auto", "json", "console"))
	p.add(validateURL("metrics.pushgateway", c.Metrics.Pushgateway, "such as http://pushgateway:9091"))
	p.add(atLeast("deletes.max_per_pass", c.Deletes.MaxPerPass, 0, " (0: no limit by count)"))
	p.add(inRange("deletes.max_percent", c.Deletes.MaxPercent, 0, 100, "; 0: no limit by share"))
	p.add(atLeast("deletes.always_allow", c.Deletes.AlwaysAllow, 0, ""))
	return p.err()
}

func (c *Config) validateSource(p *problems) {
	s := c.Source
	badDriver := p.add(oneOf("source.driver", s.Driver, "mysql", "postgres", "sqlite"))
	switch {
	case s.DSN == "":
		p.add(invalid("source.dsn", "", "is missing: set the environment variable SOURCE_DSN and write dsn: ${SOURCE_DSN}, "+
			"e.g. SOURCE_DSN='user:password@tcp(db:3306)/chat?parseTime=true' for mysql, "+
			"SOURCE_DSN='postgres://user:password@db:5432/chat' for postgres or SOURCE_DSN='file:/data/chat.db' for sqlite"))
	case s.Driver == "mysql" && !badDriver:
		if _, err := mysql.ParseDSN(s.DSN); err != nil {
			p.add(invalid("source.dsn", secret(s.DSN), fmt.Sprintf("is not a MySQL DSN like user:password@tcp(db:3306)/chat?parseTime=true (%v)", err)))
		}
	case s.Driver == "postgres" && !badDriver:
		if _, err := pgconn.ParseConfig(s.DSN); err != nil {
			p.add(invalid("source.dsn", secret(s.DSN), "is not a PostgreSQL DSN like postgres://user:password@db:5432/chat?sslmode=require "+
				"or host=db user=app password=... dbname=chat ("+pgParseProblem(err)+")"))
		}
	}
	streams := c.Streams()
	if len(streams) == 0 {
		p.add(invalid("users", "", "groups and members are all missing: configure at least one stream (a query and a cursor), "+
			"e.g. groups: {query: ..., cursor: {column: updated_at, tiebreaker: id}}"))
	}
	binlogMode := s.Mode == ModeBinlog
	for _, st := range streams {
		validateStream(p, st, binlogMode)
	}
	c.validateMode(p, streams)
	p.add(inRange("source.page_size", s.PageSize, 1, 100000, " rows a query"))
	p.add(inRange("source.max_invalid_percent", s.MaxInvalidPercent, 1, 100, " (percent of the rows read; 100 never fails a pass)"))
}

// validateStream checks one stream's query and cursor, naming its keys
// under st.Key ("source" for the groups stream of the earlier form).
func validateStream(p *problems, st NamedStream, binlogMode bool) {
	key := func(k string) string { return st.Key + "." + k }
	if ve := validateQuery(st.Query); ve != nil {
		ve.Key = key("query")
		p.add(ve)
	}
	column, tiebreaker := strings.TrimSpace(st.Cursor.Column), strings.TrimSpace(st.Cursor.Tiebreaker)
	if column == "" && !binlogMode {
		p.add(invalid(key("cursor.column"), "", "is missing: name the query's DATETIME/TIMESTAMP or integer column that grows on every change, e.g. updated_at"))
	}
	switch {
	case tiebreaker == "":
		p.add(invalid(key("cursor.tiebreaker"), "", "is missing: name a unique column of the query, e.g. the primary key id"))
	case strings.EqualFold(tiebreaker, column) && !binlogMode:
		p.add(invalid(key("cursor.tiebreaker"), quote(st.Cursor.Tiebreaker), "is the same as "+key("cursor.column")+"; use a unique column such as the primary key"))
	}
	if st.Cursor.Lag < 0 {
		p.add(invalid(key("cursor.lag"), st.Cursor.Lag.String(), "must not be negative"))
	}
	if start := strings.TrimSpace(st.Cursor.Start); start != "" {
		_, timeErr := time.Parse(time.RFC3339, start)
		_, intErr := strconv.ParseInt(start, 10, 64)
		if timeErr != nil && intErr != nil {
			p.add(invalid(key("cursor.start"), quote(st.Cursor.Start), "is not an RFC 3339 time (e.g. 2024-01-01T00:00:00Z) or an integer"))
		}
	}
	if st.Cursor.IntegerUnit != "" {
		p.add(oneOf(key("cursor.integer_unit"), st.Cursor.IntegerUnit, "seconds", "milliseconds", "microseconds"))
	}
	switch {
	case st.Name == StreamMembers:
		p.add(oneOf(key("via"), st.Via, "import", "rest"))
	case st.Via != "":
		p.add(invalid(key("via"), quote(st.Via), "is for members only (how members are added: import or rest)"))
	}
	switch {
	case st.Name == StreamUsers && st.Delete != "":
		p.add(oneOf(key("delete"), st.Delete, "deactivate", "permanent"))
	case st.Delete != "":
		p.add(invalid(key("delete"), quote(st.Delete), "is for users only (deactivate or permanent)"))
	}
}

// validateMode checks source.mode and, in binlog mode, what the feed needs.
func (c *Config) validateMode(p *problems, streams []NamedStream) {
	s := c.Source
	if p.add(oneOf("source.mode", s.Mode, ModePoll, ModeBinlog)) {
		return
	}
	if s.Mode != ModeBinlog {
		for _, st := range streams {
			if st.Table != "" {
				p.add(invalid(st.Key+".table", quote(st.Table), "is for source.mode: binlog (the table whose row events change the stream); remove it, or set source.mode: binlog"))
			}
		}
		return
	}
	if s.Driver != "" && s.Driver != "mysql" {
		p.add(invalid("source.mode", quote(s.Mode), "needs source.driver: mysql (MySQL or MariaDB, with binlog_format=ROW); with "+quote(s.Driver)+" use mode: poll"))
	}
	if s.Binlog.ServerID <= 0 || s.Binlog.ServerID > 1<<32-1 {
		p.add(invalid("source.binlog.server_id", strconv.FormatInt(s.Binlog.ServerID, 10),
			"must be set to a number from 1 to 4294967295 that no other replica of the server uses (SHOW SLAVE HOSTS lists them); there is no random default, as two feeds with one id keep dropping each other"))
	}
	if s.Binlog.Flavor != "" {
		p.add(oneOf("source.binlog.flavor", s.Binlog.Flavor, "mysql", "mariadb"))
	}
	for _, st := range streams {
		if st.Key == "source" {
			p.add(invalid("source.query", "", "is the earlier form: source.mode: binlog needs the streams form, e.g. groups: {query: ..., cursor: {tiebreaker: id}, table: chat_groups}"))
			continue
		}
		if strings.TrimSpace(st.Table) == "" {
			p.add(invalid(st.Key+".table", "", "is missing: in binlog mode, name the table whose row events change the stream, e.g. table: chat_groups (its column "+
				quote(st.Cursor.Tiebreaker)+", cursor.tiebreaker, keys the stream's rows)"))
		}
	}
}

// validateQuery wants a SELECT (or WITH … SELECT), after whitespace and
// comments: the query is only ever read from.
func validateQuery(q string) *ValidationError {
	rest := skipSQLComments(q)
	if rest == "" {
		return invalid("source.query", "", "is missing: write the SELECT whose column names are the import fields (guid, name, type, ...)")
	}
	for _, kw := range []string{"SELECT", "WITH"} {
		if len(rest) >= len(kw) && strings.EqualFold(rest[:len(kw)], kw) &&
			(len(rest) == len(kw) || !isIdentChar(rest[len(kw)])) {
			return nil
		}
	}
	first, _, _ := strings.Cut(rest, "\n")
	return invalid("source.query", quote(strings.TrimSpace(first)), "must be a SELECT statement (or WITH ... SELECT)")
}

func skipSQLComments(q string) string {
	for {
		q = strings.TrimLeft(q, " \t\r\n\f")
		switch {
		case strings.HasPrefix(q, "--"), strings.HasPrefix(q, "#"):
			_, after, found := strings.Cut(q, "\n")
			if !found {
				return ""
			}
			q = after
		case strings.HasPrefix(q, "/*"):
			_, after, found := strings.Cut(q[2:], "*/")
			if !found {
				return ""
			}
			q = after
		default:
			return q
		}
	}
}

func isIdentChar(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func (c *Config) validateCometChat(p *problems) {
	cc := c.CometChat
	if cc.BaseURL == "" {
		if cc.AppID == "" {
			p.add(invalid("cometchat.app_id", "", "is missing: set the environment variable COMETCHAT_APP_ID to your app's ID "+
				"and write app_id: ${COMETCHAT_APP_ID} (or set cometchat.base_url)"))
		}
		for i := 0; i < len(cc.AppID); i++ {
			if ch := cc.AppID[i]; ch == '_' || !isIdentChar(ch) && ch != '-' {
				p.add(invalid("cometchat.app_id", quote(cc.AppID), "must be letters, digits and hyphens: it is part of the API's host name"))
				break
			}
		}
	}
	p.add(oneOf("cometchat.region", cc.Region, "us", "eu", "in"))
	switch {
	case cc.APIKey == "":
		p.add(invalid("cometchat.api_key", "", "is missing: set the environment variable COMETCHAT_API_KEY to a REST API key "+
			"with fullAccess scope and write api_key: ${COMETCHAT_API_KEY}"))
	case strings.TrimSpace(cc.APIKey) != cc.APIKey || strings.ContainsAny(cc.APIKey, "\r\n"):
		p.add(invalid("cometchat.api_key", secret(cc.APIKey), "has spaces or line breaks around or in it; check the environment variable COMETCHAT_API_KEY"))
	}
	p.add(validateURL("cometchat.base_url", cc.BaseURL, "such as https://APP_ID.api-us.cometchat.io/v3"))
	p.add(inRange("cometchat.batch_size", cc.BatchSize, 1, 50, ", CometChat's limit per import request"))
	p.add(inRange("cometchat.concurrency", cc.Concurrency, 1, 64, " batches in flight"))
	p.add(positive("cometchat.timeout", cc.Timeout))
	p.add(atLeast("cometchat.retry.max_attempts", cc.Retry.MaxAttempts, 1, " (1: no retries)"))
	badInitial := p.add(positive("cometchat.retry.initial_backoff", cc.Retry.InitialBackoff))
	badMax := p.add(positive("cometchat.retry.max_backoff", cc.Retry.MaxBackoff))
	p.add(positive("cometchat.retry.max_elapsed", cc.Retry.MaxElapsed))
	if !badInitial && !badMax && cc.Retry.InitialBackoff > cc.Retry.MaxBackoff {
		p.add(invalid("cometchat.retry.initial_backoff", cc.Retry.InitialBackoff.String(),
			fmt.Sprintf("is more than cometchat.retry.max_backoff (%s)", cc.Retry.MaxBackoff)))
	}
	p.add(atLeast("cometchat.rate_limits.import_per_minute", cc.RateLimits.ImportPerMinute, 1, " (CometChat allows 60)"))
	p.add(atLeast("cometchat.rate_limits.other_per_minute", cc.RateLimits.OtherPerMinute, 1, " (CometChat allows 10000 on paid plans, 500 on the free plan)"))
}

// validateURL accepts "" or an absolute http(s) URL. The value is shown
// without any password it may carry.
func validateURL(key, raw, example string) *ValidationError {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return invalid(key, quote(redactURL(raw)), "must be an absolute http(s) URL "+example)
	}
	return nil
}

func validateSchedule(s string) *ValidationError {
	const allowed = `use five cron fields such as "*/5 * * * *" or a descriptor such as "@every 5m" or "@hourly"`
	if strings.TrimSpace(s) == "" {
		return invalid("schedule", "", "is missing: "+allowed)
	}
	if _, err := cron.ParseStandard(s); err != nil {
		return invalid("schedule", quote(s), fmt.Sprintf("is not a schedule (%v); %s", err, allowed))
	}
	return nil
}

// validateListen accepts "" (no HTTP server) or host:port.
func validateListen(addr string) *ValidationError {
	if addr == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
		return invalid("http.listen", quote(addr), `is not a host:port address such as ":9464" or "127.0.0.1:9464" (empty turns the HTTP server off)`)
	}
	return nil
}

// pgParseProblem is pgx's reason a DSN does not parse, without the DSN it
// quotes (pgx hides the password there, but not always all of a broken
// DSN's secrets).
func pgParseProblem(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "`: "); strings.HasPrefix(msg, "cannot parse `") && i >= 0 {
		msg = msg[i+3:]
	}
	return msg
}
