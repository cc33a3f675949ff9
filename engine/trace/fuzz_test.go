package trace

import (
	"bytes"
	"math"
	"testing"
)

// FuzzRead feeds arbitrary bytes to the trace reader: it never panics, what
// it accepts has finite values at increasing timestamps, and it lays out on
// a grid (or is refused with an error) in bounded memory.
func FuzzRead(f *testing.F) {
	for _, s := range []string{
		"timestamp,value\n1700000000,1\n1700000060,2\n",
		"\xef\xbb\xbftimestamp,value\r\n1700000000.5,1e3\r\n",
		"timestamp,value\n-1,0\n0,1\n",
		"timestamp,value\n1,NaN\n",
		"timestamp,value\n9223372036,1\n9223372037,2\n",
		"timestamp,value\n1,1\n1,2\n",
		"timestamp,value\n0,1\n9223372036854775807,2\n",
		"timestamp,value\n1.0000000001,1\n1.0000000002,2\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		points, err := Read(bytes.NewReader(data))
		if err != nil {
			return
		}
		for i, p := range points {
			if math.IsNaN(p.V) || math.IsInf(p.V, 0) {
				t.Fatalf("point %d: value %v", i, p.V)
			}
			if i > 0 && !p.T.After(points[i-1].T) {
				t.Fatalf("point %d: timestamp %v not after %v", i, p.T, points[i-1].T)
			}
		}
		step := Step(points)
		if step <= 0 {
			return
		}
		aligned, _ := Align(points, step)
		h, err := Regular(aligned, step)
		if err != nil {
			return
		}
		if len(h.Values) == 0 || len(h.Values) > maxSlots {
			t.Fatalf("grid of %d slots", len(h.Values))
		}
	})
}
