// Package config loads cometsync's YAML configuration: defaults, then
// ${VAR} expansion from the environment, then a strict decode (unknown keys
// are errors), then Validate.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration file.
type Config struct {
	Source          Source    `yaml:"source"`
	CometChat       CometChat `yaml:"cometchat"`
	State           State     `yaml:"state"`
	Schedule        string    `yaml:"schedule"`
	ShutdownTimeout Duration  `yaml:"shutdown_timeout"`
	HTTP            HTTP      `yaml:"http"`
	Log             Log       `yaml:"log"`
	Metrics         Metrics   `yaml:"metrics"`
	Deletes         Deletes   `yaml:"deletes"`
	// ReconcileSchedule, when set, makes `run` also reconcile (find and
	// delete what vanished from the source) on this schedule: the first
	// pass at or after each tick is a reconcile. Empty: never.
	ReconcileSchedule string `yaml:"reconcile_schedule"`

	// Users, Groups and Members are the streams, each optional (at least
	// one is there). source.query and source.cursor, the form of earlier
	// releases, mean the groups stream.
	Users   *Stream `yaml:"users,omitempty"`
	Groups  *Stream `yaml:"groups,omitempty"`
	Members *Stream `yaml:"members,omitempty"`

	// legacyGroups is set when the groups stream came from source.query.
	legacyGroups bool
}

// Stream is one stream's query and keyset: the rows of one entity.
type Stream struct {
	// Query is the user's SELECT; its column names are the mapping.
	Query  string `yaml:"query"`
	Cursor Cursor `yaml:"cursor"`
	// Via is how members are added: "import" (POST /data_import/members,
	// the default) or "rest" (POST /groups/{guid}/members). Members only.
	Via string `yaml:"via,omitempty"`
	// Table is the table whose row events change the stream, in binlog
	// mode (source.mode: binlog); cursor.tiebreaker is its column that
	// keys the stream's rows. "schema.table" or "table" (the DSN's
	// database).
	Table string `yaml:"table,omitempty"`
	// Delete is what deleting a user does: "deactivate" (the default;
	// CometChat keeps the user and its messages) or "permanent" (erases
	// them, irreversibly). Users only.
	Delete string `yaml:"delete,omitempty"`
}

// Deletes is the brake against mass deletion.
type Deletes struct {
	// MaxPerPass holds back every delete of a stream's pass that would
	// delete more objects than this.
	MaxPerPass int `yaml:"max_per_pass"`
	// MaxPercent holds them back when they are more than this percentage
	// of the objects the state holds for the stream...
	MaxPercent int `yaml:"max_percent"`
	// ...and more than AlwaysAllow objects.
	AlwaysAllow int `yaml:"always_allow"`
}

// The names of the streams, in the order a pass runs them: a member needs
// its user and its group.
const (
	StreamUsers   = "users"
	StreamGroups  = "groups"
	StreamMembers = "members"
)

// NamedStream is a configured stream with its name and the config key its
// settings sit under ("users", "groups", or "source" for the groups stream
// of the earlier form).
type NamedStream struct {
	Name, Key string
	*Stream
}

// Streams returns the configured streams in pass order.
func (c *Config) Streams() []NamedStream {
	var out []NamedStream
	for _, st := range []struct {
		name string
		s    *Stream
	}{{StreamUsers, c.Users}, {StreamGroups, c.Groups}, {StreamMembers, c.Members}} {
		if st.s == nil {
			continue
		}
		key := st.name
		if st.name == StreamGroups && c.legacyGroups {
			key = "source"
		}
		out = append(out, NamedStream{Name: st.name, Key: key, Stream: st.s})
	}
	return out
}

// Source is the SQL database and the query whose rows are the groups.
type Source struct {
	// Driver is "mysql" (MySQL and MariaDB) or "sqlite".
	Driver string `yaml:"driver"`
	// DSN is the driver's data source name; it holds a password: see
	// RedactDSN before printing it.
	DSN string `yaml:"dsn"`
	// Query is the user's SELECT; its column names are the mapping.
	Query    string `yaml:"query"`
	Cursor   Cursor `yaml:"cursor"`
	PageSize int    `yaml:"page_size"`
	// Mode is how changes are found: "poll" (the default: the cursor, on
	// schedule) or "binlog" (MySQL/MariaDB: the server's binary log, as
	// changes happen).
	Mode   string `yaml:"mode"`
	Binlog Binlog `yaml:"binlog"`
	// MaxInvalidPercent fails a pass (exit 1) in which more than this
	// percentage of the rows read by the cursor are invalid, at least 100
	// of them: a mapping mistake, not bad data. 100 never fails.
	MaxInvalidPercent int `yaml:"max_invalid_percent"`
}

// Source modes.
const (
	ModePoll   = "poll"
	ModeBinlog = "binlog"
)

// Binlog is how the binlog feed connects as a replica.
type Binlog struct {
	// ServerID is the replica's server_id: unique among the server's
	// replicas (the server drops the older of two connections with one).
	ServerID int64 `yaml:"server_id"`
	// Flavor is "mysql" or "mariadb"; "" detects it.
	Flavor string `yaml:"flavor"`
}

// Cursor is the keyset the query is paged and checkpointed by.
type Cursor struct {
	// Column is a DATETIME/TIMESTAMP or integer column of the query that
	// grows on every change, e.g. updated_at.
	Column string `yaml:"column"`
	// Tiebreaker is a unique column of the query, e.g. the primary key.
	Tiebreaker string `yaml:"tiebreaker"`
	// Lag keeps a pass to rows with Column <= database clock - Lag, so that
	// rows of transactions still open are not skipped.
	Lag Duration `yaml:"lag"`
	// Start is the optional first watermark: "" (from the beginning), an
	// RFC 3339 time or an integer.
	Start string `yaml:"start"`
	// IntegerUnit is the unit of an integer Column, "seconds",
	// "milliseconds" or "microseconds", so that Lag can be applied to it.
	// "" (the default) detects it from the data; a unit the data
	// contradicts is refused when the source is opened.
	IntegerUnit string `yaml:"integer_unit"`
}

// CometChat is the REST API the groups are imported into.
type CometChat struct {
	AppID string `yaml:"app_id"`
	// Region is "us", "eu" or "in".
	Region string `yaml:"region"`
	// APIKey is a REST API key with fullAccess scope: a secret.
	APIKey string `yaml:"api_key"`
	// BaseURL overrides https://{app_id}.api-{region}.cometchat.io/v3;
	// see Config.APIBaseURL.
	BaseURL string `yaml:"base_url"`
	// BatchSize is the number of groups in one import request (1..50).
	BatchSize int `yaml:"batch_size"`
	// Concurrency is the number of batches in flight (1..64).
	Concurrency int        `yaml:"concurrency"`
	Timeout     Duration   `yaml:"timeout"`
	Retry       Retry      `yaml:"retry"`
	RateLimits  RateLimits `yaml:"rate_limits"`
}

// Retry is how a failed request is retried: exponential backoff from
// InitialBackoff up to MaxBackoff, MaxAttempts tries in all, all of it
// (429 waits included) within MaxElapsed.
type Retry struct {
	MaxAttempts    int      `yaml:"max_attempts"`
	InitialBackoff Duration `yaml:"initial_backoff"`
	MaxBackoff     Duration `yaml:"max_backoff"`
	MaxElapsed     Duration `yaml:"max_elapsed"`
}

// RateLimits are the requests a minute the client paces itself to.
type RateLimits struct {
	// ImportPerMinute paces POST /data_import/groups (CometChat: 60).
	ImportPerMinute int `yaml:"import_per_minute"`
	// OtherPerMinute paces every other call (updates, deletes).
	OtherPerMinute int `yaml:"other_per_minute"`
}

// State is the local SQLite file with the checkpoint, hashes and row errors.
type State struct {
	Path string `yaml:"path"`
	// ParkAfter is the number of failed attempts after which a row is
	// parked: retried only when it changes.
	ParkAfter int `yaml:"park_after"`
}

// HTTP is the server for probes and metrics.
type HTTP struct {
	// Listen is a host:port; empty turns the server off.
	Listen string `yaml:"listen"`
}

// Log is the logger's setup.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is json, console, or auto: console on a terminal, JSON otherwise.
	Format string `yaml:"format"`
}

// Metrics is where metrics go besides the HTTP server.
type Metrics struct {
	// Pushgateway is the URL of a Prometheus Pushgateway that `once` pushes
	// to when it ends; empty: no push.
	Pushgateway string `yaml:"pushgateway"`
}

// Default returns the configuration every file starts from: all defaults,
// nothing that has to be the user's (dsn, query, cursor columns, app_id,
// api_key).
func Default() *Config {
	return &Config{
		Source: Source{
			Mode:              ModePoll,
			Driver:            "mysql",
			PageSize:          1000,
			MaxInvalidPercent: 50,
			Cursor: Cursor{
				Lag: Duration(5 * time.Second),
			},
		},
		// Each stream section starts from these; settleStreams drops those
		// the file does not have.
		Users:   &Stream{Cursor: Cursor{Lag: Duration(5 * time.Second)}},
		Groups:  &Stream{Cursor: Cursor{Lag: Duration(5 * time.Second)}},
		Members: &Stream{Cursor: Cursor{Lag: Duration(5 * time.Second)}, Via: "import"},
		CometChat: CometChat{
			Region:      "us",
			BatchSize:   50,
			Concurrency: 4,
			Timeout:     Duration(30 * time.Second),
			Retry: Retry{
				MaxAttempts:    10,
				InitialBackoff: Duration(time.Second),
				MaxBackoff:     Duration(30 * time.Second),
				MaxElapsed:     Duration(2 * time.Minute),
			},
			RateLimits: RateLimits{ImportPerMinute: 60, OtherPerMinute: 10000},
		},
		State:           State{Path: "./cometsync-state.db", ParkAfter: 10},
		Schedule:        "@every 5m",
		ShutdownTimeout: Duration(10 * time.Second),
		HTTP:            HTTP{Listen: ":9464"},
		Log:             Log{Level: "info", Format: "auto"},
		Deletes:         Deletes{MaxPerPass: 1000, MaxPercent: 10, AlwaysAllow: 10},
	}
}

// Load reads the file at path and parses it with Parse.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(data)
}

// Parse applies the defaults, expands ${VAR} from the environment, decodes
// data strictly and validates the result. Errors about a key or a value are
// a *ValidationError, or ValidationErrors when there are several: every
// unknown key and badly shaped value of the file, or else every bad value.
func Parse(data []byte) (*Config, error) {
	return parse(data, os.Getenv)
}

func parse(data []byte, getenv func(string) string) (*Config, error) {
	cfg := Default()
	expanded := []byte(expand(string(data), getenv))
	var root yaml.Node
	if err := yaml.Unmarshal(expanded, &root); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	// Check keys and value shapes first: its errors name the full key path,
	// which the decoder's do not. Values are validated only once they all
	// decode.
	var shapes problems
	checkNode(&root, reflect.TypeFor[Config](), "", &shapes)
	if err := shapes.err(); err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(expanded))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := cfg.settleStreams(topKeys(&root)); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// topKeys lists the top-level keys of a YAML document.
func topKeys(root *yaml.Node) map[string]bool {
	keys := map[string]bool{}
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 && root.Content[0].Kind == yaml.MappingNode {
		m := root.Content[0]
		for i := 0; i+1 < len(m.Content); i += 2 {
			keys[m.Content[i].Value] = true
		}
	}
	return keys
}

// settleStreams drops the stream sections the file does not have (Default
// prepared each with its defaults) and turns source.query and
// source.cursor into the groups stream.
func (c *Config) settleStreams(present map[string]bool) error {
	for name, s := range map[string]**Stream{StreamUsers: &c.Users, StreamGroups: &c.Groups, StreamMembers: &c.Members} {
		if !present[name] {
			*s = nil
		}
	}
	legacy := strings.TrimSpace(c.Source.Query) != "" || c.Source.Cursor.Column != "" || c.Source.Cursor.Tiebreaker != ""
	switch {
	case legacy && c.Groups != nil:
		return invalid("groups", "", "and source.query/source.cursor both define the groups stream: keep one "+
			"(move source.query and source.cursor under groups: as query and cursor)")
	case legacy:
		c.Groups = &Stream{Query: c.Source.Query, Cursor: c.Source.Cursor}
		c.legacyGroups = true
	}
	return nil
}

// expand replaces ${NAME} with getenv(NAME), as os.Expand does (an unset
// variable becomes empty), and $$ with a literal $. Any other $ is left
// alone: passwords and MySQL JSON paths ('$.plan') keep their dollars.
func expand(s string, getenv func(string) string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end <= 0 || strings.ContainsAny(s[i+2:i+2+end], " \t\r\n${") {
				b.WriteByte(c)
				continue
			}
			b.WriteString(getenv(s[i+2 : i+2+end]))
			i += 2 + end
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Duration is a time.Duration written in YAML as a Go duration string,
// e.g. "500ms", "5s", "1m30s".
type Duration time.Duration

// Duration returns d as a time.Duration.
func (d Duration) Duration() time.Duration { return time.Duration(d) }

// String formats d like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q %s", n.Line, n.Value, durationProblem)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes d as a Go duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

const durationProblem = "is not a duration (use Go syntax such as 500ms, 30s, 5m or 1h30m)"

func parseDuration(s string) (time.Duration, error) {
	return time.ParseDuration(strings.TrimSpace(s))
}

var durationType = reflect.TypeFor[Duration]()

// checkNode walks the YAML tree along the Go type it decodes into. It
// reports every unknown key, value of the wrong shape and bad duration, each
// with its line and full key path.
func checkNode(n *yaml.Node, t reflect.Type, path string, found *problems) {
	switch n.Kind {
	case 0: // an empty file
		return
	case yaml.DocumentNode:
		if len(n.Content) > 0 {
			checkNode(n.Content[0], t, path, found)
		}
		return
	case yaml.AliasNode:
		checkNode(n.Alias, t, path, found)
		return
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // keeps the default
	}
	bad := func(value, problem string) {
		found.add(&ValidationError{Key: displayPath(path), Value: value, Problem: problem, Line: n.Line})
	}
	switch {
	case t == durationType:
		if n.Kind != yaml.ScalarNode {
			bad("", "must be a duration such as 30s, got "+shape(n))
		} else if _, err := parseDuration(n.Value); err != nil {
			bad(quote(n.Value), durationProblem)
		}
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			bad("", fmt.Sprintf("must be a mapping with the keys %s, got %s", knownKeys(t), shape(n)))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.ShortTag() == "!!merge" {
				checkMerge(v, t, path, found)
				continue
			}
			f, ok := fieldByKey(t, k.Value)
			if !ok {
				found.add(&ValidationError{Key: joinPath(path, k.Value), Problem: fmt.Sprintf("unknown key (known %s: %s)",
					under(path), knownKeys(t)), Line: k.Line})
				continue
			}
			checkNode(v, f.Type, joinPath(path, k.Value), found)
		}
	case t.Kind() == reflect.Int:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
			bad(valueOrShape(n), "is not an integer")
		}
	case t.Kind() == reflect.String:
		if n.Kind != yaml.ScalarNode {
			bad("", "must be a single value, got "+shape(n))
		}
	}
}

// checkMerge checks the mapping(s) merged in with YAML's "<<" key.
func checkMerge(v *yaml.Node, t reflect.Type, path string, found *problems) {
	if v.Kind == yaml.SequenceNode {
		for _, m := range v.Content {
			checkNode(m, t, path, found)
		}
		return
	}
	checkNode(v, t, path, found)
}

func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if f.IsExported() && yamlKey(f) == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func yamlKey(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

func knownKeys(t reflect.Type) string {
	keys := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		if t.Field(i).IsExported() {
			keys = append(keys, yamlKey(t.Field(i)))
		}
	}
	return strings.Join(keys, ", ")
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func displayPath(path string) string {
	if path == "" {
		return "(top level)"
	}
	return path
}

func under(path string) string {
	if path == "" {
		return "at the top level"
	}
	return "under " + path
}

func shape(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	}
	return quote(n.Value)
}

func valueOrShape(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return quote(n.Value)
	}
	return shape(n)
}
