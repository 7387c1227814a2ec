package entities

import (
	"strconv"
	"strings"
	"time"

	"github.com/cometsync/cometsync/internal/syncer"
)

// DeletedColumn is the result column that marks a row deleted: true,
// non-zero, or a non-NULL time (e.g. `archived AS deleted`,
// `deleted_at IS NOT NULL AS deleted`, or `deleted_at AS deleted`).
const DeletedColumn = "deleted"

// WithoutDeleted splits the query's columns into the ones the entity's
// mapping reads and the position of the deleted column (-1 when there is
// none).
func WithoutDeleted(cols []string) (mapped []string, at int) {
	at = -1
	for i, c := range cols {
		if strings.EqualFold(strings.TrimSpace(c), DeletedColumn) {
			at = i
			continue
		}
		mapped = append(mapped, c)
	}
	return mapped, at
}

// SoftDeletes is an entity whose query selects a deleted column at At: a
// row marked deleted maps to an Object with only its key (the rest of the
// row need not be valid), which the engine deletes from CometChat if this
// row delivered it.
type SoftDeletes struct {
	syncer.Entity
	At int
}

// Map maps a row, the deleted column left out.
func (e SoftDeletes) Map(values []any) (syncer.Object, error) {
	deleted := isDeleted(values[e.At])
	rest := make([]any, 0, len(values)-1)
	rest = append(rest, values[:e.At]...)
	rest = append(rest, values[e.At+1:]...)
	obj, err := e.Entity.Map(rest)
	if !deleted {
		return obj, err
	}
	if obj.Key == "" {
		// No valid key: nothing of it can have been delivered.
		return obj, err
	}
	return syncer.Object{Key: obj.Key, Deleted: true}, nil
}

// isDeleted reads a deleted column's value: NULL, false, 0, "" and a zero
// time are not deleted; true, any other number, a time or any other text
// (a timestamp read as text) are.
func isDeleted(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case int64:
		return x != 0
	case int32:
		return x != 0
	case int:
		return x != 0
	case uint64:
		return x != 0
	case float64:
		return x != 0
	case time.Time:
		return !x.IsZero()
	case []byte:
		return textDeleted(string(x))
	case string:
		return textDeleted(x)
	}
	return true
}

func textDeleted(s string) bool {
	s = strings.TrimSpace(s)
	if s == "" || strings.EqualFold(s, "false") || strings.HasPrefix(s, "0000-00-00") {
		return false
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return f != 0
	}
	return true
}
