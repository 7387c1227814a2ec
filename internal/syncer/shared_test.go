package syncer

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cometsync/cometsync/internal/source"
)

// keyList is a boundedKeyLister over a fixed list of keys.
type keyList [][]string

func (l keyList) Count(context.Context, *source.Position, source.Value) (int64, error) {
	return int64(len(l)), nil
}

func (l keyList) shared(t *testing.T) *sharedKeys {
	t.Helper()
	sk, err := findSharedKeys(context.Background(), l, nil, source.Value{}, int64(len(l)), joinParts)
	if err != nil {
		t.Fatal(err)
	}
	return sk
}

func (l keyList) KeysUpTo(_ context.Context, _ []string, _ source.Value, fn func([]string) error) error {
	for _, k := range l {
		if err := fn(slices.Clone(k)); err != nil {
			return err
		}
	}
	return nil
}

func joinParts(p []string) string { return strings.Join(p, "_member_") }

// Every key that more than one row holds is found, wherever its rows
// are and however many; of the keys that one row holds, few are taken for
// shared ones (the filter's false positives).
func TestFindSharedKeys(t *testing.T) {
	const n = 200_000
	l := make(keyList, n)
	for i := range n {
		l[i] = []string{fmt.Sprint("g", i), fmt.Sprint("u", i)}
	}
	l[n/2] = []string{"g1", "u1"}
	l[n-1] = []string{"g1", "u1"} // three rows
	l[20] = []string{"g10", "u10"}
	l = append(l, []string{"g5", "u5"})
	sk := l.shared(t)
	for _, k := range []string{"g1_member_u1", "g10_member_u10", "g5_member_u5"} {
		if !sk.has(k) {
			t.Errorf("%s is held by more than one row, and not found so", k)
		}
	}
	wrong := 0
	for i := range n {
		if i != 1 && i != 10 && i != 5 && sk.has(fmt.Sprintf("g%d_member_u%d", i, i)) {
			wrong++
		}
	}
	// At most about one in 1,400 at the filter's size: 140 of 200,000;
	// 400 would mean the filter is too small or its probes are not
	// independent.
	if wrong > 400 {
		t.Errorf("%d of %d keys held by one row are taken for shared ones; want at most about 140", wrong, n)
	}
	if len(sk.hashes) < 3 || len(sk.hashes) > 3+wrong+10 {
		t.Errorf("found %d shared keys (and %d wrongly), want 3 and the wrong ones", len(sk.hashes), wrong)
	}
}

// No rows: no shared key, and no chunk to merge.
func TestFindSharedKeysOfNoRows(t *testing.T) {
	if sk := (keyList{}).shared(t); len(sk.hashes) != 0 || sk.has("a") {
		t.Errorf("findSharedKeys of no rows = %d keys; want none", len(sk.hashes))
	}
}
