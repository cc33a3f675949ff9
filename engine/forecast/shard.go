package forecast

import (
	"hash/fnv"

	"github.com/prometheus/prometheus/model/labels"
)

// Shard is the part of the series this forecaster forecasts when several
// replicas share the policies: replica Index of Count. The zero Shard (and
// any Count below 2) owns every series.
//
// A series belongs to the replica with the highest rendezvous score of the
// series' key (its policy and its labels, the same for every source of a
// multi-source series) and the replica's index. Every replica computes the
// same owner from the labels alone, so every series is forecast by exactly
// one replica without any coordination, and going from N to N+1 replicas
// moves only the series whose new highest score is the new replica's: about
// 1/(N+1) of them (N−1 the same way in reverse, 1/N of them).
type Shard struct {
	Index, Count int
}

// Owns tells whether the shard forecasts the series with labels l (the
// query's labels plus policy, without __name__).
func (s Shard) Owns(l labels.Labels) bool {
	if s.Count < 2 {
		return true
	}
	return s.Owner(l) == s.Index
}

// Owner returns the index of the replica that forecasts the series.
func (s Shard) Owner(l labels.Labels) int {
	k := seriesKey(l)
	best, bestScore := 0, uint64(0)
	for i := range max(s.Count, 1) {
		if sc := mix64(k ^ mix64(uint64(i)+0x9e3779b97f4a7c15)); i == 0 || sc > bestScore {
			best, bestScore = i, sc
		}
	}
	return best
}

// seriesKey is a hash of the label names and values that is stable across
// Kedastral and Prometheus versions (unlike labels.Hash, whose algorithm is
// Prometheus' to change), as replicas of different versions must agree
// during a rolling update.
func seriesKey(l labels.Labels) uint64 {
	d := fnv.New64a()
	sep := []byte{0xff}
	l.Range(func(lb labels.Label) {
		_, _ = d.Write([]byte(lb.Name))
		_, _ = d.Write(sep)
		_, _ = d.Write([]byte(lb.Value))
		_, _ = d.Write(sep)
	})
	return d.Sum64()
}

// mix64 is the splitmix64 finalizer: every input bit affects every output bit.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
