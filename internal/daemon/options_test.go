package daemon

import "testing"

func TestReadOnlyAddress(t *testing.T) {
	for _, c := range []struct {
		o    Options
		want string
		bad  bool
	}{
		{Options{}, "", false},
		{Options{ReadOnlyPort: 10255}, "0.0.0.0:10255", false},
		{Options{ReadOnlyPort: 10255, Address: "127.0.0.1"}, "127.0.0.1:10255", false},
		{Options{ReadOnlyPort: 10255, Address: "::1"}, "[::1]:10255", false},
		{Options{ReadOnlyPort: 10255, Address: "localhost"}, "", true},
		{Options{ReadOnlyPort: 70000}, "", true},
		{Options{ReadOnlyAddr: "127.0.0.1:1"}, "127.0.0.1:1", false},
	} {
		got, err := readOnlyAddress(c.o)
		if got != c.want || (err != nil) != c.bad {
			t.Errorf("%+v: %q %v, want %q (error %v)", c.o, got, err, c.want, c.bad)
		}
	}
}
