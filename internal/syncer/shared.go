package syncer

import (
	"context"
	"hash/maphash"

	"github.com/cometsync/cometsync/internal/source"
)

// boundedKeyLister is what a Source offers to list the keys of its rows up
// to upper, lowercased as the mapping lowercases guids (source.KeysUpTo),
// and to count those rows. A first backfill needs it: the state cannot
// tell who owns a guid while it bulk loads, so the pass must know
// beforehand which keys more than one row maps to.
type boundedKeyLister interface {
	Count(ctx context.Context, after *source.Position, upper source.Value) (int64, error)
	KeysUpTo(ctx context.Context, columns []string, upper source.Value, fn func(parts []string) error) error
}

// Sizing of the filter findSharedKeys reads the keys through: bitsPerKey
// bits a row counted, probes bits a key. A key that one row holds is
// taken for a shared one at most about once in 1,400 (the filter's false
// positive rate at this size; 28 in 200,000 in the test), which costs a
// claim; a key that two rows hold is never missed.
const (
	bitsPerKey = 16
	probes     = 7
)

// sharedKeys is the set of keys that more than one row of the source may
// map to, as hashes. Every key that two rows hold is in it; a few that one
// row holds are too (see bitsPerKey), and are claimed like shared ones,
// which costs a map entry and changes nothing else. Finding them costs two
// bytes a row while the keys are read, where a GROUP BY of the keys in the
// database took 25 s over a million memberships.
type sharedKeys struct {
	seed   maphash.Seed
	hashes map[uint64]struct{}
}

// findSharedKeys lists the keys of src's rows up to upper (joined by
// join) through a Bloom filter sized for n rows, and returns the keys the
// filter had seen already: the shared ones, and a few false positives. An
// n that is off (rows written since it was counted) only changes the rate
// of those.
func findSharedKeys(ctx context.Context, src boundedKeyLister, columns []string, upper source.Value, n int64, join func([]string) string) (*sharedKeys, error) {
	sk := &sharedKeys{seed: maphash.MakeSeed(), hashes: map[uint64]struct{}{}}
	bits := uint64(max(n, 1)) * bitsPerKey
	filter := make([]uint64, (bits+63)/64)
	bits = uint64(len(filter)) * 64
	err := src.KeysUpTo(ctx, columns, upper, func(parts []string) error {
		h := sk.hash(join(parts))
		// Double hashing: the probes step through the filter by the
		// hash's high half, from its low half.
		at, step := h&0xffffffff, h>>32|1
		seen := true
		for range probes {
			i := at % bits
			if filter[i/64]&(1<<(i%64)) == 0 {
				seen = false
				filter[i/64] |= 1 << (i % 64)
			}
			at += step
		}
		if seen {
			sk.hashes[h] = struct{}{}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return sk, nil
}

func (sk *sharedKeys) hash(key string) uint64 { return maphash.String(sk.seed, key) }

// has reports whether key may be held by more than one row.
func (sk *sharedKeys) has(key string) bool {
	if sk == nil || len(sk.hashes) == 0 {
		return false
	}
	_, ok := sk.hashes[sk.hash(key)]
	return ok
}
