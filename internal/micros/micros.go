// Package micros holds money amounts as int64 millionths, the fixed-point
// form the running order metrics (totalRevenue, averageOrderValue) add up
// in: Parse reads a Postgres numeric's text, AppendJSON writes the sum back
// as a JSON number.
package micros

import (
	"strconv"

	"github.com/walcast/walcast/internal/jsonw"
)

// Scale is the number of micro-units in one unit.
const Scale = 1_000_000

// Parse parses a decimal number ("123.45", "-0.5", "7") into micro-units,
// rounding half away from zero beyond 6 decimals. NaN, infinity, exponents
// and overflow report false.
func Parse(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	neg := false
	if b[0] == '-' || b[0] == '+' {
		neg = b[0] == '-'
		b = b[1:]
	}
	var n int64
	digits, frac := 0, -1
	roundUp := false
	for _, c := range b {
		switch {
		case c == '.' && frac < 0:
			frac = 0
		case c >= '0' && c <= '9':
			if frac >= 6 {
				if frac == 6 {
					roundUp = c >= '5'
				}
				frac++
				continue
			}
			if n > (1<<62)/10 {
				return 0, false
			}
			n = n*10 + int64(c-'0')
			digits++
			if frac >= 0 {
				frac++
			}
		default:
			return 0, false
		}
	}
	if digits == 0 {
		return 0, false
	}
	if frac < 0 {
		frac = 0
	}
	for ; frac < 6; frac++ {
		if n > (1<<62)/10 {
			return 0, false
		}
		n *= 10
	}
	if roundUp {
		n++
	}
	if neg {
		n = -n
	}
	return n, true
}

// AppendJSON appends v micro-units as a JSON number in jsonw's canonical
// form, the form it has after crossing Redis: "12.5", "0", "-3.000001". An
// amount with more significant digits than a float64 holds is written as
// JavaScript would print the nearest float64.
func AppendJSON(dst []byte, v int64) []byte {
	var buf [24]byte
	lit := appendExact(buf[:0], v)
	out, ok := jsonw.AppendNumber(dst, lit)
	if !ok {
		return append(dst, lit...) // unreachable: lit is a JSON number
	}
	return out
}

// appendExact appends v/Scale with every digit and no trailing fraction
// zeros.
func appendExact(dst []byte, v int64) []byte {
	u := uint64(v)
	if v < 0 {
		dst = append(dst, '-')
		u = -u
	}
	dst = strconv.AppendUint(dst, u/Scale, 10)
	f := u % Scale
	if f == 0 {
		return dst
	}
	var buf [7]byte
	buf[0] = '.'
	for i := 6; i >= 1; i-- {
		buf[i] = byte('0' + f%10)
		f /= 10
	}
	end := 7
	for buf[end-1] == '0' {
		end--
	}
	return append(dst, buf[:end]...)
}
