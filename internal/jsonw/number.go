package jsonw

import (
	"errors"
	"math"
	"strconv"
)

// ErrSyntax reports input that is not JSON.
var ErrSyntax = errors.New("invalid JSON")

// Number is a JSON number as walcast carries it between nodes: an integer
// literal (no fraction, no exponent) that fits an int64 is kept exactly as
// Int; every other number is the nearest float64, as JavaScript's JSON.parse
// reads it.
type Number struct {
	Int   int64
	Float float64
	IsInt bool
}

// Append appends n in canonical form: an Int as its decimal digits, a Float
// as JavaScript's Number.prototype.toString writes it (see AppendFloat).
func (n Number) Append(dst []byte) []byte {
	if n.IsInt {
		return strconv.AppendInt(dst, n.Int, 10)
	}
	return AppendFloat(dst, n.Float)
}

// ScanNumber reads the JSON number at the start of in (strict JSON grammar:
// no leading zeros, no '+', digits on both sides of '.') and returns it with
// the number of bytes it took. A number too large for a float64 is ±Inf, as
// in JavaScript (the canonical form writes it as null).
func ScanNumber[T string | []byte](in T) (Number, int, error) {
	i, n := 0, len(in)
	if i < n && in[i] == '-' {
		i++
	}
	switch {
	case i < n && in[i] == '0':
		i++
	case i < n && in[i] >= '1' && in[i] <= '9':
		for i < n && isDigit(in[i]) {
			i++
		}
	default:
		return Number{}, 0, errors.New("bad number")
	}
	isInt := true
	if i < n && in[i] == '.' {
		isInt = false
		i++
		if i >= n || !isDigit(in[i]) {
			return Number{}, 0, errors.New("bad number: no digit after '.'")
		}
		for i < n && isDigit(in[i]) {
			i++
		}
	}
	if i < n && (in[i] == 'e' || in[i] == 'E') {
		isInt = false
		i++
		if i < n && (in[i] == '+' || in[i] == '-') {
			i++
		}
		if i >= n || !isDigit(in[i]) {
			return Number{}, 0, errors.New("bad number: no digit in the exponent")
		}
		for i < n && isDigit(in[i]) {
			i++
		}
	}
	lit := in[:i]
	if isInt && i <= 20 {
		if v, ok := parseInt(lit); ok {
			return Number{Int: v, IsInt: true}, i, nil
		}
	}
	// strconv copies its input into an error, so the conversion of a short
	// []byte does not allocate.
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return Number{}, 0, err
	}
	return Number{Float: f}, i, nil
}

// parseInt parses the digits of an integer literal (with an optional '-')
// and reports false when it does not fit an int64.
func parseInt[T string | []byte](b T) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	var u uint64
	for i := 0; i < len(b); i++ {
		d := uint64(b[i] - '0')
		if u > (math.MaxUint64-d)/10 {
			return 0, false
		}
		u = u*10 + d
	}
	switch {
	case neg && u <= 1<<63:
		return int64(-u), true
	case !neg && u <= math.MaxInt64:
		return int64(u), true
	}
	return 0, false
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// AppendNumber appends the JSON number literal lit in canonical form (see
// Number). It reports false, leaving dst unchanged, when lit is not exactly
// one JSON number.
func AppendNumber[T string | []byte](dst []byte, lit T) ([]byte, bool) {
	n, size, err := ScanNumber(lit)
	if err != nil || size != len(lit) {
		return dst, false
	}
	return n.Append(dst), true
}

// AppendFloat appends f as JSON.stringify writes a JavaScript number: the
// shortest digits that read back as f, in fixed notation from 1e-7 up to
// 1e21 ("0.000001", "123456789012345680000") and in exponent notation
// outside ("1e-7", "1e+21", "1.5e+300"); -0 as 0; NaN and ±Inf as null.
func AppendFloat(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	if f == 0 {
		return append(dst, '0')
	}
	if f < 0 {
		dst = append(dst, '-')
		f = -f
	}
	// 'e' with the shortest precision: "d.ddde±xx" (at most 17 digits).
	var buf [32]byte
	e := strconv.AppendFloat(buf[:0], f, 'e', -1, 64)
	var digits [17]byte
	k := 0
	i := 0
	for ; e[i] != 'e'; i++ {
		if e[i] != '.' {
			digits[k] = e[i]
			k++
		}
	}
	exp := 0
	neg := e[i+1] == '-'
	for _, c := range e[i+2:] {
		exp = exp*10 + int(c-'0')
	}
	if neg {
		exp = -exp
	}
	// f = 0.d1…dk × 10^n, the ECMAScript Number::toString layout.
	n := exp + 1
	d := digits[:k]
	switch {
	case k <= n && n <= 21:
		dst = append(dst, d...)
		for range n - k {
			dst = append(dst, '0')
		}
	case 0 < n && n <= 21:
		dst = append(dst, d[:n]...)
		dst = append(dst, '.')
		dst = append(dst, d[n:]...)
	case -6 < n && n <= 0:
		dst = append(dst, '0', '.')
		for range -n {
			dst = append(dst, '0')
		}
		dst = append(dst, d...)
	default:
		dst = append(dst, d[0])
		if k > 1 {
			dst = append(dst, '.')
			dst = append(dst, d[1:]...)
		}
		dst = append(dst, 'e')
		if n-1 < 0 {
			dst = append(dst, '-')
			dst = strconv.AppendInt(dst, int64(1-n), 10)
		} else {
			dst = append(dst, '+')
			dst = strconv.AppendInt(dst, int64(n-1), 10)
		}
	}
	return dst
}
