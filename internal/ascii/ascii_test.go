package ascii

import (
	"strconv"
	"testing"
)

func TestHex(t *testing.T) {
	for c := 0; c < 256; c++ {
		v, err := strconv.ParseUint(string([]byte{byte(c)}), 16, 8)
		if IsHex(byte(c)) != (err == nil) {
			t.Fatalf("IsHex(%q) = %v", rune(c), IsHex(byte(c)))
		}
		if err == nil && Unhex(byte(c)) != byte(v) {
			t.Fatalf("Unhex(%q) = %d, want %d", rune(c), Unhex(byte(c)), v)
		}
	}
}

func TestTrimOWS(t *testing.T) {
	for in, want := range map[string]string{"": "", " \ta b\t ": "a b", "x": "x", "\t\t": "", " \nx": "\nx"} {
		if got := TrimOWS(in); got != want {
			t.Errorf("TrimOWS(%q) = %q, want %q", in, got, want)
		}
	}
}
