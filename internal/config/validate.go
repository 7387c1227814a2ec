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
func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("config: ")
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

func oneOf(key, value string, allowed ...string) error {
	for _, a := range allowed {
		if value == a {
			return nil
		}
	}
	return invalid(key, quote(value), "is not one of "+strings.Join(allowed, ", "))
}

func inRange(key string, v, lo, hi int, why string) error {
	if v < lo || v > hi {
		return invalid(key, strconv.Itoa(v), fmt.Sprintf("is out of range (%d..%d%s)", lo, hi, why))
	}
	return nil
}

func atLeast(key string, v, lo int, why string) error {
	if v < lo {
		return invalid(key, strconv.Itoa(v), fmt.Sprintf("must be at least %d%s", lo, why))
	}
	return nil
}

func positive(key string, d Duration) error {
	if d <= 0 {
		return invalid(key, d.String(), "must be more than 0")
	}
	return nil
}

// Validate checks every value and returns the first problem, in the order
// of the file, as a *ValidationError. It never puts a secret in a message.
func (c *Config) Validate() error {
	checks := []func() error{
		c.validateSource,
		c.validateCometChat,
		func() error {
			if strings.TrimSpace(c.State.Path) == "" {
				return invalid("state.path", "", "is missing: name the local SQLite file that keeps the checkpoint, e.g. ./cometsync-state.db")
			}
			return atLeast("state.park_after", c.State.ParkAfter, 1, " attempt")
		},
		func() error { return validateSchedule(c.Schedule) },
		func() error { return positive("shutdown_timeout", c.ShutdownTimeout) },
		func() error { return validateListen(c.HTTP.Listen) },
		func() error { return oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error") },
		func() error { return oneOf("log.format", c.Log.Format, "auto", "json", "console") },
		func() error {
			return validateURL("metrics.pushgateway", c.Metrics.Pushgateway, "such as http://pushgateway:9091")
		},
	}
	for _, check := range checks {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) validateSource() error {
	s := c.Source
	if err := oneOf("source.driver", s.Driver, "mysql", "sqlite"); err != nil {
		return err
	}
	if s.DSN == "" {
		return invalid("source.dsn", "", "is missing: set the environment variable SOURCE_DSN and write dsn: ${SOURCE_DSN}, "+
			"e.g. SOURCE_DSN='user:password@tcp(db:3306)/chat?parseTime=true' for mysql or SOURCE_DSN='file:/data/chat.db' for sqlite")
	}
	if s.Driver == "mysql" {
		if _, err := mysql.ParseDSN(s.DSN); err != nil {
			return invalid("source.dsn", secret(s.DSN), fmt.Sprintf("is not a MySQL DSN like user:password@tcp(db:3306)/chat?parseTime=true (%v)", err))
		}
	}
	if err := validateQuery(s.Query); err != nil {
		return err
	}
	if strings.TrimSpace(s.Cursor.Column) == "" {
		return invalid("source.cursor.column", "", "is missing: name the query's DATETIME/TIMESTAMP or integer column that grows on every change, e.g. updated_at")
	}
	if strings.TrimSpace(s.Cursor.Tiebreaker) == "" {
		return invalid("source.cursor.tiebreaker", "", "is missing: name a unique column of the query, e.g. the primary key id")
	}
	if strings.EqualFold(strings.TrimSpace(s.Cursor.Tiebreaker), strings.TrimSpace(s.Cursor.Column)) {
		return invalid("source.cursor.tiebreaker", quote(s.Cursor.Tiebreaker), "is the same as source.cursor.column; use a unique column such as the primary key")
	}
	if s.Cursor.Lag < 0 {
		return invalid("source.cursor.lag", s.Cursor.Lag.String(), "must not be negative")
	}
	if start := strings.TrimSpace(s.Cursor.Start); start != "" {
		_, timeErr := time.Parse(time.RFC3339, start)
		_, intErr := strconv.ParseInt(start, 10, 64)
		if timeErr != nil && intErr != nil {
			return invalid("source.cursor.start", quote(s.Cursor.Start), "is not an RFC 3339 time (e.g. 2024-01-01T00:00:00Z) or an integer")
		}
	}
	if err := oneOf("source.cursor.integer_unit", s.Cursor.IntegerUnit, "seconds", "milliseconds"); err != nil {
		return err
	}
	return inRange("source.page_size", s.PageSize, 1, 100000, " rows a query")
}

// validateQuery wants a SELECT (or WITH … SELECT), after whitespace and
// comments: the query is only ever read from.
func validateQuery(q string) error {
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

func (c *Config) validateCometChat() error {
	cc := c.CometChat
	if cc.BaseURL == "" {
		if cc.AppID == "" {
			return invalid("cometchat.app_id", "", "is missing: set the environment variable COMETCHAT_APP_ID to your app's ID "+
				"and write app_id: ${COMETCHAT_APP_ID} (or set cometchat.base_url)")
		}
		for i := 0; i < len(cc.AppID); i++ {
			if ch := cc.AppID[i]; ch == '_' || !isIdentChar(ch) && ch != '-' {
				return invalid("cometchat.app_id", quote(cc.AppID), "must be letters, digits and hyphens: it is part of the API's host name")
			}
		}
	}
	if err := oneOf("cometchat.region", cc.Region, "us", "eu", "in"); err != nil {
		return err
	}
	if cc.APIKey == "" {
		return invalid("cometchat.api_key", "", "is missing: set the environment variable COMETCHAT_API_KEY to a REST API key "+
			"with fullAccess scope and write api_key: ${COMETCHAT_API_KEY}")
	}
	if strings.TrimSpace(cc.APIKey) != cc.APIKey || strings.ContainsAny(cc.APIKey, "\r\n") {
		return invalid("cometchat.api_key", secret(cc.APIKey), "has spaces or line breaks around or in it; check the environment variable COMETCHAT_API_KEY")
	}
	if err := validateURL("cometchat.base_url", cc.BaseURL, "such as https://APP_ID.api-us.cometchat.io/v3"); err != nil {
		return err
	}
	checks := []error{
		inRange("cometchat.batch_size", cc.BatchSize, 1, 50, ", CometChat's limit per import request"),
		inRange("cometchat.concurrency", cc.Concurrency, 1, 64, " batches in flight"),
		positive("cometchat.timeout", cc.Timeout),
		atLeast("cometchat.retry.max_attempts", cc.Retry.MaxAttempts, 1, " (1: no retries)"),
		positive("cometchat.retry.initial_backoff", cc.Retry.InitialBackoff),
		positive("cometchat.retry.max_backoff", cc.Retry.MaxBackoff),
		positive("cometchat.retry.max_elapsed", cc.Retry.MaxElapsed),
	}
	for _, err := range checks {
		if err != nil {
			return err
		}
	}
	if cc.Retry.InitialBackoff > cc.Retry.MaxBackoff {
		return invalid("cometchat.retry.initial_backoff", cc.Retry.InitialBackoff.String(),
			fmt.Sprintf("is more than cometchat.retry.max_backoff (%s)", cc.Retry.MaxBackoff))
	}
	if err := atLeast("cometchat.rate_limits.import_per_minute", cc.RateLimits.ImportPerMinute, 1, " (CometChat allows 60)"); err != nil {
		return err
	}
	return atLeast("cometchat.rate_limits.other_per_minute", cc.RateLimits.OtherPerMinute, 1, " (CometChat allows 10000 on paid plans, 500 on the free plan)")
}

// validateURL accepts "" or an absolute http(s) URL. The value is shown
// without any password it may carry.
func validateURL(key, raw, example string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return invalid(key, quote(redactURL(raw)), "must be an absolute http(s) URL "+example)
	}
	return nil
}

func validateSchedule(s string) error {
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
func validateListen(addr string) error {
	if addr == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
		return invalid("http.listen", quote(addr), `is not a host:port address such as ":9464" or "127.0.0.1:9464" (empty turns the HTTP server off)`)
	}
	return nil
}
