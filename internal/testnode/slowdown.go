package testnode

import (
	"os"
	"strconv"
	"time"
)

// EnvSlowdown multiplies the bounded waits of the integration tests (set by
// hack/vm/guest-tests.sh in a software-emulated guest, where everything
// runs several times slower than the waits were written for). Unset: 1.
const EnvSlowdown = "MKL_TEST_SLOWDOWN"

// Scale stretches a test's wait bound by EnvSlowdown: the wait still ends
// on its real signal, only the give-up point moves.
func Scale(d time.Duration) time.Duration {
	f, err := strconv.ParseFloat(os.Getenv(EnvSlowdown), 64)
	if err != nil || f < 1 {
		return d
	}
	return time.Duration(float64(d) * f)
}
