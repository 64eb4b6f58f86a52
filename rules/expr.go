package rules

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/walcast/walcast/cdc"
)

// The condition language of a rules file. An expression reads the changed
// row's columns and derived values ("let"), the old row ("old.col"), and
// values looked up through other tables ("variant.product_id"):
//
//	available <= threshold && (op() == 'insert' || old.available > old.threshold)
//	changed(status) || changed(tracking_number)
//	quantity - coalesce(reserved, 0)
//
// Operators: || && ! == != < <= > >= + - * and parentheses; literals: integers,
// 'strings', null, true, false. Functions: changed(e) (true when the old row
// is not known, or e differs between old and new), coalesce(a, b, …), op()
// ('insert', 'update' or 'delete'), commit_ms() (the commit time in ms) and,
// in payloads only, row() (the new row as to_jsonb prints it) and, in the
// payload of a collect rule, items() (the JSON array of its rows' items).
//
// Values are SQL-like: a comparison with null (or with a value Postgres did
// not send) is false, except "x == null" and "x != null", which test for it;
// arithmetic on null is null. Columns compared with or computed as integers
// are parsed from their text form. Evaluation does not allocate.

// kind is the kind of a value during evaluation.
type kind uint8

const (
	kNull    kind = iota // SQL NULL
	kUnknown             // not in this row image (unchanged TOAST, key-only old row, no old row)
	kInt
	kText // b holds the column's text form; oid its type (0 for a literal)
	kBool
)

type value struct {
	k   kind
	oid uint32 // beside k: 40 bytes, not 48 (values are passed by value in eval)
	i   int64
	b   []byte
}

func (v value) known() bool { return v.k != kNull && v.k != kUnknown }

// opcode is a node's operation.
type opcode uint8

const (
	opLit opcode = iota
	opCol
	opLookup
	opNot
	opAnd
	opOr
	opEq
	opNe
	opLt
	opLe
	opGt
	opGe
	opAdd
	opSub
	opMul
	opNeg
	opChanged
	opCoalesce
	opOp
	opCommitMS
	opRow
	opIsNull
	opNotNull
	opLet // a derived value, computed once per row and change
	opItems
)

// node is a compiled expression.
type node struct {
	op      opcode
	a, b    *node
	args    []*node
	lit     value
	slot    int  // opCol: column slot of the table
	old     bool // opCol: read the old row
	join    int  // opLookup: join index
	lcol    int  // opLookup: column index in the lookup
	usesOld bool // the subtree reads the old row outside changed()
}

// env is what an expression is evaluated against.
type env struct {
	newRow, oldRow cdc.Tuple // oldRow nil when no full old image
	idx            []int     // column slot -> tuple index (-1: not in the relation)
	oids           []uint32  // tuple index -> base type OID
	joins          [][]value // join index -> looked-up columns (nil: not found)
	op             cdc.Op
	commitMS       int64
	joinKeys       []*node        // join index -> key expression (evaluated on first use)
	caches         []*lookupCache // join index -> its lookup
	joinDone       uint64         // which joins are looked up
	condDone       uint64         // which of the table's shared conditions are evaluated
	condVal        uint64         // and their results
	keyBuf         []byte
	lets           []value // derived values computed for this change: index*2 (+1 old)
	letOK          uint64  // which lets entries are set
}

func (e *env) col(slot int, old bool) value {
	t := e.newRow
	if old {
		if e.oldRow == nil {
			return value{k: kUnknown}
		}
		t = e.oldRow
	}
	i := -1
	if slot < len(e.idx) {
		i = e.idx[slot]
	}
	if i < 0 || i >= len(t) {
		return value{k: kUnknown}
	}
	switch v := t[i]; v.Kind {
	case cdc.ValueNull:
		return value{k: kNull}
	case cdc.ValueText:
		var oid uint32
		if i < len(e.oids) {
			oid = e.oids[i]
		}
		return value{k: kText, b: v.Data, oid: oid}
	}
	return value{k: kUnknown}
}

// join returns the looked-up row of join j, looking it up on first use;
// nil when not found.
func (e *env) join(j int) []value {
	if j >= len(e.joins) {
		return nil
	}
	if j >= 64 || e.joinDone&(1<<j) != 0 || j >= len(e.joinKeys) {
		return e.joins[j]
	}
	e.joinDone |= 1 << j
	var row []value
	if k := e.joinKeys[j].eval(e); k.k == kText {
		row = e.caches[j].rows[string(k.b)]
	} else if k.k == kInt {
		e.keyBuf = strconv.AppendInt(e.keyBuf[:0], k.i, 10)
		row = e.caches[j].rows[string(e.keyBuf)]
	}
	e.joins[j] = row
	return row
}

var (
	vTrue  = value{k: kBool, i: 1}
	vFalse = value{k: kBool}
)

func boolValue(b bool) value {
	if b {
		return vTrue
	}
	return vFalse
}

func truthy(v value) bool { return v.k == kBool && v.i != 0 }

// asInt reads v as an integer.
func asInt(v value) (int64, bool) {
	switch v.k {
	case kInt:
		return v.i, true
	case kText:
		return cdc.ParseInt(v.b)
	}
	return 0, false
}

// compare orders two known values: integers numerically (text parsed when
// the other side is an integer), text bytewise, booleans false < true.
func compare(a, b value) (int, bool) {
	if a.k == kInt || b.k == kInt {
		x, ok1 := asInt(a)
		y, ok2 := asInt(b)
		if !ok1 || !ok2 {
			return 0, false
		}
		switch {
		case x < y:
			return -1, true
		case x > y:
			return 1, true
		}
		return 0, true
	}
	if a.k == kText && b.k == kText {
		return bytes.Compare(a.b, b.b), true
	}
	if a.k == kBool && b.k == kBool {
		return int(a.i - b.i), true
	}
	return 0, false
}

// distinct is IS DISTINCT FROM, with unknown values always distinct.
func distinct(a, b value) bool {
	if a.k == kUnknown || b.k == kUnknown {
		return true
	}
	if a.k == kNull || b.k == kNull {
		return a.k != b.k
	}
	c, ok := compare(a, b)
	return !ok || c != 0
}

// cond evaluates r's condition once per change: rules with the same
// condition (admin:low-stock and inventory:low-stock) share the result.
func (e *env) cond(r *Rule) bool {
	i := r.cond
	if i >= 64 {
		return r.when.test(e)
	}
	bit := uint64(1) << i
	if e.condDone&bit == 0 {
		if r.when.test(e) {
			e.condVal |= bit
		}
		e.condDone |= bit
	}
	return e.condVal&bit != 0
}

// test evaluates n as a condition: true only for a true boolean. Boolean
// operators are evaluated here without building values.
func (n *node) test(e *env) bool {
	switch n.op {
	case opAnd:
		return n.a.test(e) && n.b.test(e)
	case opOr:
		return n.a.test(e) || n.b.test(e)
	case opNot:
		v := n.a.eval(e)
		return v.k == kBool && v.i == 0
	case opIsNull:
		return !n.a.eval(e).known()
	case opNotNull:
		return n.a.eval(e).known()
	case opChanged:
		return e.oldRow == nil || distinct(n.b.eval(e), n.a.eval(e))
	case opEq, opNe, opLt, opLe, opGt, opGe:
		a, b := n.a.eval(e), n.b.eval(e)
		if !a.known() || !b.known() {
			return false
		}
		c, ok := compare(a, b)
		if !ok {
			return false
		}
		switch n.op {
		case opEq:
			return c == 0
		case opNe:
			return c != 0
		case opLt:
			return c < 0
		case opLe:
			return c <= 0
		case opGt:
			return c > 0
		}
		return c >= 0
	}
	return truthy(n.eval(e))
}

func (n *node) eval(e *env) value {
	switch n.op {
	case opLit:
		return n.lit
	case opLet:
		k := n.slot * 2
		if n.old {
			k++
		}
		if k >= 64 || k >= len(e.lets) {
			return n.a.eval(e)
		}
		if e.letOK&(1<<k) != 0 {
			return e.lets[k]
		}
		v := n.a.eval(e)
		e.lets[k], e.letOK = v, e.letOK|1<<k
		return v
	case opCol:
		return e.col(n.slot, n.old)
	case opLookup:
		row := e.join(n.join)
		if row == nil {
			return value{k: kNull}
		}
		return row[n.lcol]
	case opNot:
		v := n.a.eval(e)
		if v.k != kBool {
			return vFalse
		}
		return boolValue(v.i == 0)
	case opAnd, opOr:
		return boolValue(n.test(e))
	case opIsNull:
		return boolValue(!n.a.eval(e).known())
	case opNotNull:
		return boolValue(n.a.eval(e).known())
	case opEq, opNe, opLt, opLe, opGt, opGe:
		a, b := n.a.eval(e), n.b.eval(e)
		if !a.known() || !b.known() {
			return vFalse
		}
		c, ok := compare(a, b)
		if !ok {
			return vFalse
		}
		switch n.op {
		case opEq:
			return boolValue(c == 0)
		case opNe:
			return boolValue(c != 0)
		case opLt:
			return boolValue(c < 0)
		case opLe:
			return boolValue(c <= 0)
		case opGt:
			return boolValue(c > 0)
		}
		return boolValue(c >= 0)
	case opAdd, opSub, opMul:
		a, b := n.a.eval(e), n.b.eval(e)
		if a.k == kUnknown || b.k == kUnknown {
			return value{k: kUnknown}
		}
		if a.k == kNull || b.k == kNull {
			return value{k: kNull}
		}
		x, ok1 := asInt(a)
		y, ok2 := asInt(b)
		if !ok1 || !ok2 {
			return value{k: kUnknown}
		}
		switch n.op {
		case opAdd:
			return value{k: kInt, i: x + y}
		case opSub:
			return value{k: kInt, i: x - y}
		}
		return value{k: kInt, i: x * y}
	case opNeg:
		v := n.a.eval(e)
		if x, ok := asInt(v); ok {
			return value{k: kInt, i: -x}
		}
		if v.k == kNull {
			return v
		}
		return value{k: kUnknown}
	case opChanged:
		if e.oldRow == nil {
			return vTrue
		}
		return boolValue(distinct(n.b.eval(e), n.a.eval(e)))
	case opCoalesce:
		for _, a := range n.args {
			if v := a.eval(e); v.known() {
				return v
			}
		}
		return value{k: kNull}
	case opOp:
		return value{k: kText, b: opNames[e.op]}
	case opCommitMS:
		return value{k: kInt, i: e.commitMS}
	}
	return value{k: kUnknown}
}

var opNames = map[cdc.Op][]byte{cdc.OpInsert: []byte("insert"), cdc.OpUpdate: []byte("update"), cdc.OpDelete: []byte("delete")}

// scope resolves names while compiling the expressions of one table.
type scope struct {
	lets    map[string]string   // derived values: name -> expression source
	joins   []string            // join aliases, in join order
	lookups map[string][]string // join alias -> the lookup's columns
	slots   []string            // column slot -> column name
	arith   map[string]bool     // columns used as integers
	busy    map[string]bool     // lets being compiled (cycle check)
	letIdx  map[string]int      // let name -> index in env.lets/2
	payload bool                // row() allowed
	items   bool                // items() allowed (the payload of a collect rule)
}

func (s *scope) slot(col string) int {
	for i, c := range s.slots {
		if c == col {
			return i
		}
	}
	s.slots = append(s.slots, col)
	return len(s.slots) - 1
}

// ExprError is a syntax or name error in one expression.
type ExprError struct {
	Expr string
	Pos  int // byte offset in Expr
	Msg  string
}

func (e *ExprError) Error() string {
	return fmt.Sprintf("%q at %d: %s", e.Expr, e.Pos, e.Msg)
}

type token struct {
	kind byte // 'i' ident, 'n' number, 's' string, 'o' operator, 0 end
	text string
	pos  int
}

func lex(src string) ([]token, error) {
	var out []token
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			j := i + 1
			for j < len(src) && (src[j] == '_' || src[j] >= 'a' && src[j] <= 'z' || src[j] >= 'A' && src[j] <= 'Z' || isDigit(src[j])) {
				j++
			}
			out = append(out, token{'i', src[i:j], i})
			i = j
		case isDigit(c):
			j := i + 1
			for j < len(src) && isDigit(src[j]) {
				j++
			}
			out = append(out, token{'n', src[i:j], i})
			i = j
		case c == '\'':
			var sb strings.Builder
			j := i + 1
			for {
				if j >= len(src) {
					return nil, &ExprError{src, i, "unterminated string"}
				}
				if src[j] == '\'' {
					if j+1 < len(src) && src[j+1] == '\'' {
						sb.WriteByte('\'')
						j += 2
						continue
					}
					break
				}
				sb.WriteByte(src[j])
				j++
			}
			out = append(out, token{'s', sb.String(), i})
			i = j + 1
		default:
			two := ""
			if i+1 < len(src) {
				two = src[i : i+2]
			}
			switch two {
			case "==", "!=", "<=", ">=", "&&", "||":
				out = append(out, token{'o', two, i})
				i += 2
				continue
			}
			if strings.IndexByte("<>!+-*(),.", c) < 0 {
				return nil, &ExprError{src, i, fmt.Sprintf("unexpected character %q", c)}
			}
			out = append(out, token{'o', string(c), i})
			i++
		}
	}
	return append(out, token{0, "", len(src)}), nil
}

type parser struct {
	src   string
	toks  []token
	p     int
	sc    *scope
	old   bool // compiling for the old row
	inCh  bool // inside changed()
	depth int
}

// compile parses src in scope sc.
func compile(src string, sc *scope) (*node, error) {
	return compileRow(src, sc, false)
}

func compileRow(src string, sc *scope, old bool) (*node, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{src: src, toks: toks, sc: sc, old: old}
	n, err := p.or()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != 0 {
		return nil, p.errAt(t, "unexpected "+quoteTok(t))
	}
	return n, nil
}

func quoteTok(t token) string {
	if t.kind == 0 {
		return "end of expression"
	}
	return strconv.Quote(t.text)
}

func (p *parser) peek() token { return p.toks[p.p] }
func (p *parser) next() token { t := p.toks[p.p]; p.p++; return t }
func (p *parser) errAt(t token, msg string) error {
	return &ExprError{p.src, t.pos, msg}
}
func (p *parser) accept(op string) bool {
	if t := p.peek(); t.kind == 'o' && t.text == op {
		p.p++
		return true
	}
	return false
}
func (p *parser) expect(op string) error {
	if !p.accept(op) {
		return p.errAt(p.peek(), "want "+strconv.Quote(op)+", got "+quoteTok(p.peek()))
	}
	return nil
}

func bin(op opcode, a, b *node) *node {
	return &node{op: op, a: a, b: b, usesOld: a.usesOld || b.usesOld}
}

func (p *parser) or() (*node, error) {
	a, err := p.and()
	for err == nil && p.accept("||") {
		var b *node
		if b, err = p.and(); err == nil {
			a = bin(opOr, a, b)
		}
	}
	return a, err
}

func (p *parser) and() (*node, error) {
	a, err := p.not()
	for err == nil && p.accept("&&") {
		var b *node
		if b, err = p.not(); err == nil {
			a = bin(opAnd, a, b)
		}
	}
	return a, err
}

func (p *parser) not() (*node, error) {
	if p.accept("!") {
		p.depth++
		defer func() { p.depth-- }()
		if p.depth > 64 {
			return nil, p.errAt(p.peek(), "expression nests too deeply")
		}
		a, err := p.not()
		if err != nil {
			return nil, err
		}
		return &node{op: opNot, a: a, usesOld: a.usesOld}, nil
	}
	return p.cmp()
}

var cmpOps = map[string]opcode{"==": opEq, "!=": opNe, "<": opLt, "<=": opLe, ">": opGt, ">=": opGe}

func (p *parser) cmp() (*node, error) {
	a, err := p.sum()
	if err != nil {
		return nil, err
	}
	t := p.peek()
	op, ok := cmpOps[t.text]
	if t.kind != 'o' || !ok {
		return a, nil
	}
	p.p++
	if nt := p.peek(); nt.kind == 'i' && nt.text == "null" && (op == opEq || op == opNe) {
		p.p++
		if op == opEq {
			return &node{op: opIsNull, a: a, usesOld: a.usesOld}, nil
		}
		return &node{op: opNotNull, a: a, usesOld: a.usesOld}, nil
	}
	b, err := p.sum()
	if err != nil {
		return nil, err
	}
	return bin(op, a, b), nil
}

func (p *parser) sum() (*node, error) {
	a, err := p.term()
	for err == nil {
		var op opcode
		switch {
		case p.accept("+"):
			op = opAdd
		case p.accept("-"):
			op = opSub
		default:
			return a, nil
		}
		var b *node
		if b, err = p.term(); err == nil {
			p.markArith(a)
			p.markArith(b)
			a = bin(op, a, b)
		}
	}
	return a, err
}

func (p *parser) term() (*node, error) {
	a, err := p.unary()
	for err == nil && p.accept("*") {
		var b *node
		if b, err = p.unary(); err == nil {
			p.markArith(a)
			p.markArith(b)
			a = bin(opMul, a, b)
		}
	}
	return a, err
}

// markArith records a column used as an integer, for the catalog check.
func (p *parser) markArith(n *node) {
	if n.op == opCol && p.sc.arith != nil {
		p.sc.arith[p.sc.slots[n.slot]] = true
	}
	if n.op == opCoalesce {
		for _, a := range n.args {
			p.markArith(a)
		}
	}
}

func (p *parser) unary() (*node, error) {
	if p.accept("-") {
		p.depth++
		defer func() { p.depth-- }()
		if p.depth > 64 {
			return nil, p.errAt(p.peek(), "expression nests too deeply")
		}
		a, err := p.unary()
		if err != nil {
			return nil, err
		}
		p.markArith(a)
		return &node{op: opNeg, a: a, usesOld: a.usesOld}, nil
	}
	return p.primary()
}

func (p *parser) primary() (*node, error) {
	t := p.next()
	switch t.kind {
	case 'n':
		i, err := strconv.ParseInt(t.text, 10, 64)
		if err != nil {
			return nil, p.errAt(t, "integer out of range")
		}
		return &node{op: opLit, lit: value{k: kInt, i: i}}, nil
	case 's':
		return &node{op: opLit, lit: value{k: kText, b: []byte(t.text)}}, nil
	case 'o':
		if t.text == "(" {
			p.depth++
			defer func() { p.depth-- }()
			if p.depth > 64 {
				return nil, p.errAt(t, "expression nests too deeply")
			}
			n, err := p.or()
			if err != nil {
				return nil, err
			}
			return n, p.expect(")")
		}
		return nil, p.errAt(t, "unexpected "+quoteTok(t))
	case 'i':
		if p.peek().kind == 'o' && p.peek().text == "(" {
			p.p++
			return p.call(t)
		}
		return p.name(t)
	}
	return nil, p.errAt(t, "unexpected "+quoteTok(t))
}

func (p *parser) call(fn token) (*node, error) {
	var args []*node
	if !p.accept(")") {
		for {
			var a *node
			var err error
			if fn.text == "changed" {
				if p.inCh || p.old {
					return nil, p.errAt(fn, "changed() cannot nest or read old.")
				}
				start := p.p
				p.inCh = true
				a, err = p.or()
				p.inCh = false
				if err != nil {
					return nil, err
				}
				// Compile the same tokens again for the old row.
				end := p.p
				sub := &parser{src: p.src, toks: append(append([]token(nil), p.toks[start:end]...), token{0, "", p.toks[end].pos}), sc: p.sc, old: true, inCh: true}
				b, err := sub.or()
				if err != nil {
					return nil, err
				}
				if err := p.expect(")"); err != nil {
					return nil, err
				}
				return &node{op: opChanged, a: a, b: b}, nil
			}
			a, err = p.or()
			if err != nil {
				return nil, err
			}
			args = append(args, a)
			if p.accept(")") {
				break
			}
			if err := p.expect(","); err != nil {
				return nil, err
			}
		}
	}
	want := func(n int) error {
		if len(args) != n {
			return p.errAt(fn, fmt.Sprintf("%s() takes %d arguments, got %d", fn.text, n, len(args)))
		}
		return nil
	}
	switch fn.text {
	case "coalesce":
		if len(args) < 1 {
			return nil, p.errAt(fn, "coalesce() needs arguments")
		}
		n := &node{op: opCoalesce, args: args}
		for _, a := range args {
			n.usesOld = n.usesOld || a.usesOld
		}
		return n, nil
	case "op":
		return &node{op: opOp}, want(0)
	case "commit_ms":
		return &node{op: opCommitMS}, want(0)
	case "row":
		if !p.sc.payload {
			return nil, p.errAt(fn, "row() is only allowed in a payload")
		}
		return &node{op: opRow}, want(0)
	case "items":
		if !p.sc.items {
			return nil, p.errAt(fn, "items() is only allowed in the payload of a collect rule")
		}
		return &node{op: opItems}, want(0)
	case "changed":
		return nil, p.errAt(fn, "changed() takes 1 argument, got 0")
	}
	return nil, p.errAt(fn, "unknown function "+fn.text+"()")
}

func (p *parser) name(t token) (*node, error) {
	switch t.text {
	case "null":
		return &node{op: opLit, lit: value{k: kNull}}, nil
	case "true":
		return &node{op: opLit, lit: vTrue}, nil
	case "false":
		return &node{op: opLit, lit: vFalse}, nil
	}
	first := t.text
	if !p.accept(".") {
		return p.column(t, first, p.old)
	}
	sec := p.next()
	if sec.kind != 'i' {
		return nil, p.errAt(sec, "want a name after "+strconv.Quote(first+"."))
	}
	switch first {
	case "old", "new":
		if first == "old" && p.inCh {
			return nil, p.errAt(t, "old. inside changed(): changed() already compares with the old row")
		}
		return p.column(sec, sec.text, first == "old" || p.old)
	}
	for ji, alias := range p.sc.joins {
		if alias != first {
			continue
		}
		if p.old {
			return nil, p.errAt(t, "looked-up values are only known for the new row")
		}
		for ci, c := range p.sc.lookups[alias] {
			if c == sec.text {
				return &node{op: opLookup, join: ji, lcol: ci}, nil
			}
		}
		return nil, p.errAt(sec, fmt.Sprintf("lookup %s has no column %s (columns: %s)", alias, sec.text, strings.Join(p.sc.lookups[alias], ", ")))
	}
	return nil, p.errAt(t, "unknown name "+first+" (want old., new. or a join)")
}

// column resolves a bare name: a derived value (compiled in place) or a
// column of the table.
func (p *parser) column(t token, name string, old bool) (*node, error) {
	if src, ok := p.sc.lets[name]; ok {
		if p.sc.busy[name] {
			return nil, p.errAt(t, "derived value "+name+" refers to itself")
		}
		if p.sc.busy == nil {
			p.sc.busy = map[string]bool{}
		}
		p.sc.busy[name] = true
		defer delete(p.sc.busy, name)
		inner, err := compileRow(src, p.sc, old)
		if err != nil {
			return nil, fmt.Errorf("in %s: %w", name, err)
		}
		if p.sc.letIdx == nil {
			p.sc.letIdx = map[string]int{}
		}
		li, ok := p.sc.letIdx[name]
		if !ok {
			li = len(p.sc.letIdx)
			p.sc.letIdx[name] = li
		}
		n := &node{op: opLet, a: inner, slot: li, old: old, usesOld: old && !p.inCh || inner.usesOld && !p.inCh}
		return n, nil
	}
	return &node{op: opCol, slot: p.sc.slot(name), old: old, usesOld: old && !p.inCh}, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
