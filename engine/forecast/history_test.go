package forecast

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestPacked drives a packed array and a plain []float32 with the same
// appends, rewrites of recent and old points, narrowing of old blocks and
// drops from the front, and checks every point against it: within the
// rounding bound of 16-bit blocks, or of 8-bit ones where narrowed.
func TestPacked(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var p packed
	var ref []float32
	sealedRaw, narrow8 := 0, 0
	check := func(when string) {
		t.Helper()
		if p.len() != len(ref) {
			t.Fatalf("%s: len %d, want %d", when, p.len(), len(ref))
		}
		dst := make([]float64, p.len())
		p.decode(dst)
		for i, want := range ref {
			got := p.at(i)
			if math.IsNaN(got) != math.IsNaN(dst[i]) || (!math.IsNaN(got) && got != dst[i]) {
				t.Fatalf("%s: at(%d) = %v, decode %v", when, i, got, dst[i])
			}
			w := float64(want)
			if !finite(w) {
				if !math.IsNaN(got) && got != w {
					t.Fatalf("%s: point %d = %v, want missing (%v)", when, i, got, w)
				}
				continue
			}
			// packTol16 (packTol8 where narrowed) of a block's mean: the
			// values are within 500 of 1000.
			tol := 0.1
			if i < p.narrowed*packLen-p.skip {
				tol = 7.6
			}
			if math.Abs(got-w) > tol || math.IsNaN(got) {
				t.Fatalf("%s: point %d = %v, want %v", when, i, got, w)
			}
		}
	}
	for round := range 40 {
		for range 200 + rng.IntN(300) {
			v := float32(1000 + 500*math.Sin(float64(len(ref))/300) + rng.Float64())
			switch r := rng.IntN(100); {
			case r < 3:
				v = float32(math.NaN())
			case r < 4:
				v = float32(math.Inf(1))
			case r < 5 && round%4 == 0:
				v = 1e9 // a spike: the block stays float32
			}
			p.append(v)
			ref = append(ref, v)
		}
		check("after appends")
		p.narrow(p.len() - 600)
		check("after narrowing")
		// Rewrite the newest points and an old one.
		for k := range 3 {
			i := len(ref) - 1 - k
			ref[i] = float32(k)
			p.set(i, float32(k))
		}
		i := rng.IntN(len(ref))
		ref[i] = 777
		p.set(i, 777)
		check("after sets")
		k := rng.IntN(len(ref)/2 + 1)
		p.dropFront(k)
		ref = ref[k:]
		check("after drop")
		for _, b := range p.blocks {
			switch b.width {
			case 4:
				sealedRaw++
			case 1:
				narrow8++
			}
		}
	}
	if sealedRaw == 0 || narrow8 == 0 {
		t.Errorf("%d blocks with a spike kept float32, %d narrowed to 8 bits; want some of each", sealedRaw, narrow8)
	}
	// Packed: well below float32's 4 bytes a point.
	p.reset()
	for i := range 20000 {
		p.append(float32(1000 + 500*math.Sin(float64(i)/300)))
	}
	if b := p.bytes(); b > 20000*5/2 {
		t.Errorf("%d bytes for 20000 points, want at most 2.5 a point", b)
	}
	p.narrow(p.len())
	if b := p.bytes(); b > 20000*14/10 {
		t.Errorf("%d bytes for 20000 narrowed points, want at most 1.4 a point", b)
	}
	p.dropFront(p.len())
	if p.len() != 0 {
		t.Errorf("len %d after dropping all", p.len())
	}
}
