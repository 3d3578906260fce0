package api

import (
	"net/http"
	"net/http/pprof"
	"strings"
)

// debugHandler adds Go's profiler under /debug/pprof/ to the API. Only the
// unix socket (0600: root) serves it, never the read-only TCP address: a
// profile shows memory contents (pod specs, env) and costs CPU while taken.
// Usage: curl --unix-socket SOCK http://x/debug/pprof/profile?seconds=20 > cpu.pprof
func debugHandler(api http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/debug/pprof/") {
			mux.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}
