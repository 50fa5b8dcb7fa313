package jsonobj

// maxDepth is encoding/json's limit of nesting (its scanner's
// maxNestingDepth): deeper input is invalid.
const maxDepth = 10000

// Valid reports whether data is one valid JSON value with optional
// surrounding whitespace, with exactly encoding/json.Valid's answer (RFC
// 8259 grammar; bytes >= 0x80 in strings are not checked as UTF-8; nesting
// deeper than 10000 is invalid), without its per-byte state machine: it is
// several times faster on the small objects of mini-program requests and
// payloads, and does not allocate below 64 levels of nesting.
// FuzzValid checks it against encoding/json.
func Valid(data []byte) bool {
	var inline [64]byte
	stack := inline[:0] // '{' or '[' per open container
	i := skipWS(data, 0)
	for {
		// A value starts at i.
		if i >= len(data) {
			return false
		}
		switch c := data[i]; {
		case c == '{' || c == '[':
			if len(stack) >= maxDepth {
				return false
			}
			stack = append(stack, c)
			i = skipWS(data, i+1)
			if i < len(data) && data[i] == c+2 { // '}' or ']': empty
				i++
				stack = stack[:len(stack)-1]
				break
			}
			if c == '{' {
				if i = validMemberKey(data, i); i < 0 {
					return false
				}
			}
			continue // the first value of the container
		case c == '"':
			if i = validString(data, i); i < 0 {
				return false
			}
		case c == '-' || c >= '0' && c <= '9':
			if i = validNumber(data, i); i < 0 {
				return false
			}
		case c == 't':
			if i = literal(data, i, "true"); i < 0 {
				return false
			}
		case c == 'f':
			if i = literal(data, i, "false"); i < 0 {
				return false
			}
		case c == 'n':
			if i = literal(data, i, "null"); i < 0 {
				return false
			}
		default:
			return false
		}
		// A value ended at i: close containers until one goes on.
		for {
			i = skipWS(data, i)
			if len(stack) == 0 {
				return i == len(data)
			}
			if i >= len(data) {
				return false
			}
			top := stack[len(stack)-1]
			if data[i] == top+2 { // '}' or ']'
				stack = stack[:len(stack)-1]
				i++
				continue
			}
			if data[i] != ',' {
				return false
			}
			i = skipWS(data, i+1)
			if top == '{' {
				if i = validMemberKey(data, i); i < 0 {
					return false
				}
			}
			break
		}
	}
}

// validMemberKey checks `"key" ws : ws` at d[i] and returns the index of
// the value after it, or -1.
func validMemberKey(d []byte, i int) int {
	if i >= len(d) || d[i] != '"' {
		return -1
	}
	if i = validString(d, i); i < 0 {
		return -1
	}
	i = skipWS(d, i)
	if i >= len(d) || d[i] != ':' {
		return -1
	}
	return skipWS(d, i+1)
}

// validString checks the string token at d[i] (a '"') and returns the
// index after it, or -1: no control characters, only JSON's escapes.
func validString(d []byte, i int) int {
	for i++; i < len(d); {
		c := d[i]
		switch {
		case c == '"':
			return i + 1
		case c == '\\':
			if i+1 >= len(d) {
				return -1
			}
			switch d[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(d) {
					return -1
				}
				for _, h := range d[i+2 : i+6] {
					if !isHex(h) {
						return -1
					}
				}
				i += 6
			default:
				return -1
			}
		case c < 0x20:
			return -1
		default:
			i++
		}
	}
	return -1
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// validNumber checks the number at d[i] and returns the index after it,
// or -1: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func validNumber(d []byte, i int) int {
	if d[i] == '-' {
		i++
	}
	switch {
	case i >= len(d):
		return -1
	case d[i] == '0':
		i++
	case d[i] >= '1' && d[i] <= '9':
		i = digits(d, i+1)
	default:
		return -1
	}
	if i < len(d) && d[i] == '.' {
		j := digits(d, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		j := digits(d, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

func digits(d []byte, i int) int {
	for i < len(d) && d[i] >= '0' && d[i] <= '9' {
		i++
	}
	return i
}

// literal checks that d[i:] starts with lit and returns the index after
// it, or -1.
func literal(d []byte, i int, lit string) int {
	if len(d)-i < len(lit) || string(d[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

// IsObject reports whether data is valid JSON whose top-level value is an
// object (a decrypted payload must be one).
func IsObject(data []byte) bool {
	for _, c := range data {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '{':
			return Valid(data)
		}
		return false
	}
	return false
}
