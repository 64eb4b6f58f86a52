package main

import (
	"math/bits"
	"time"
)

// histSubBits sets the precision of Hist: each power of two is split into
// 2^histSubBits buckets, so a recorded value is off by at most 1/64 (1.6%).
const histSubBits = 6

const histBuckets = (64 - histSubBits) * (1 << histSubBits)

// Hist is a log-linear latency histogram of nanosecond values, in the manner of
// HdrHistogram but fixed-size and allocation-free on Record. It is not safe for
// concurrent use; merge per-goroutine histograms with Merge.
type Hist struct {
	Counts []uint64 `json:"counts"`
	N      uint64   `json:"n"`
	Max    int64    `json:"max"`
	Sum    float64  `json:"sum"`
}

// NewHist returns an empty histogram.
func NewHist() *Hist { return &Hist{Counts: make([]uint64, histBuckets)} }

func histIndex(v uint64) int {
	if v < 1<<(histSubBits+1) {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits - 1
	return shift<<histSubBits + int(v>>shift)
}

// histValue returns the upper bound of bucket i.
func histValue(i int) int64 {
	if i < 1<<(histSubBits+1) {
		return int64(i)
	}
	shift := i>>histSubBits - 1
	m := int64(i&(1<<histSubBits-1) + 1<<histSubBits)
	return (m+1)<<shift - 1
}

// Record adds one value in nanoseconds; negative values count as zero.
func (h *Hist) Record(ns int64) {
	if ns < 0 {
		ns = 0
	}
	h.Counts[histIndex(uint64(ns))]++
	h.N++
	h.Sum += float64(ns)
	if ns > h.Max {
		h.Max = ns
	}
}

// Merge adds o into h.
func (h *Hist) Merge(o *Hist) {
	if o == nil || len(o.Counts) == 0 {
		return
	}
	for i, c := range o.Counts {
		h.Counts[i] += c
	}
	h.N += o.N
	h.Sum += o.Sum
	if o.Max > h.Max {
		h.Max = o.Max
	}
}

// Quantile returns the value at quantile q (0..1), as an upper bucket bound
// clamped to the maximum seen.
func (h *Hist) Quantile(q float64) time.Duration {
	if h.N == 0 {
		return 0
	}
	rank := uint64(q*float64(h.N) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.Counts {
		seen += c
		if seen >= rank {
			v := histValue(i)
			if v > h.Max {
				v = h.Max
			}
			return time.Duration(v)
		}
	}
	return time.Duration(h.Max)
}
