package config

import (
	"net/url"
	"regexp"
	"strings"

	"github.com/go-sql-driver/mysql"
	"go.yaml.in/yaml/v3"
)

const redacted = "***"

// APIBaseURL returns cometchat.base_url without a trailing slash, or
// https://{app_id}.api-{region}.cometchat.io/v3 when it is empty.
func (c *Config) APIBaseURL() string {
	if c.CometChat.BaseURL != "" {
		return strings.TrimRight(c.CometChat.BaseURL, "/")
	}
	return "https://" + c.CometChat.AppID + ".api-" + c.CometChat.Region + ".cometchat.io/v3"
}

// Redacted returns the configuration as YAML, fit for a log or a support
// ticket: api_key is "***", and so are the DSN's password and any password
// in base_url or metrics.pushgateway.
func (c *Config) Redacted() string {
	r := *c
	r.CometChat.APIKey = secret(c.CometChat.APIKey)
	r.Source.DSN = RedactDSN(c.Source.Driver, c.Source.DSN)
	r.CometChat.BaseURL = redactURL(c.CometChat.BaseURL)
	r.Metrics.Pushgateway = redactURL(c.Metrics.Pushgateway)
	if c.legacyGroups {
		r.Groups = nil // it is source.query and source.cursor
	}
	var b strings.Builder
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&r); err != nil {
		// Unreachable: every field is a plain value.
		return "config: cannot encode: " + err.Error()
	}
	return b.String()
}

// RedactDSN returns dsn with its password replaced by "***". A mysql DSN is
// parsed with the driver's own parser (and so comes back in its canonical
// form); for any other driver, or a mysql DSN that does not parse,
// everything between the first ':' and the last '@' is replaced, which
// covers user:password@host forms. A postgres DSN's password is hidden in
// either of its forms (URL or keyword/value). A sqlite DSN is a file name and is
// returned as it is.
func RedactDSN(driver, dsn string) string {
	switch driver {
	case "sqlite":
		return dsn
	case "mysql":
		if cfg, err := mysql.ParseDSN(dsn); err == nil {
			if cfg.Passwd == "" {
				return dsn
			}
			cfg.Passwd = redacted
			return cfg.FormatDSN()
		}
	case "postgres":
		return redactPostgres(dsn)
	}
	return redactUserinfo(dsn)
}

// pgPassword finds password=VALUE in a keyword/value DSN: the value plain or
// single-quoted with backslash escapes.
var pgPassword = regexp.MustCompile(`(^|\s)password\s*=\s*('(\\.|[^'\\])*'?|\S*)`)

// redactPostgres hides the password of a PostgreSQL DSN in either of its
// forms: postgres://user:password@host/db (also in a password= query
// parameter), or keyword/value pairs with password=....
func redactPostgres(dsn string) string {
	trimmed := strings.TrimSpace(dsn)
	if strings.HasPrefix(trimmed, "postgres://") || strings.HasPrefix(trimmed, "postgresql://") {
		u, err := url.Parse(trimmed)
		if err != nil {
			return redactURL(trimmed)
		}
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), redacted)
		}
		if q := u.Query(); q.Has("password") {
			q.Set("password", redacted)
			u.RawQuery = q.Encode()
		}
		return strings.Replace(u.String(), url.QueryEscape(redacted), redacted, -1)
	}
	return pgPassword.ReplaceAllString(dsn, "${1}password="+redacted)
}

// redactUserinfo replaces what lies between the first ':' and the last '@'.
func redactUserinfo(s string) string {
	colon := strings.IndexByte(s, ':')
	at := strings.LastIndexByte(s, '@')
	if colon < 0 || at <= colon {
		return s
	}
	return s[:colon+1] + redacted + s[at:]
}

// redactURL hides the password in a URL's user info (scheme://user:pw@host).
func redactURL(raw string) string {
	i := strings.Index(raw, "://")
	if i < 0 {
		return redactUserinfo(raw)
	}
	rest := raw[i+3:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	return raw[:i+3] + redactUserinfo(rest[:end]) + rest[end:]
}

// RedactedAPIBaseURL is APIBaseURL with any password in base_url replaced
// by "***", fit for printing.
func (c *Config) RedactedAPIBaseURL() string { return redactURL(c.APIBaseURL()) }
