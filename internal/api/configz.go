package api

import (
	"context"
	"net/http"
	"path/filepath"
)

// DaemonConfig is where the daemon keeps things, served at /configz (the
// kubelet's endpoint name) so client commands given --socket learn the
// paths instead of needing the daemon's flags repeated.
type DaemonConfig struct {
	NodeName     string `json:"nodeName"`
	RootDir      string `json:"rootDir"`
	LogDir       string `json:"logDir"`
	ManifestDir  string `json:"manifestDir"`
	Socket       string `json:"socket"`
	CgroupDriver string `json:"cgroupDriver"` // the driver in use (auto resolved)
	CgroupRoot   string `json:"cgroupRoot"`
}

// SetConfig sets what /configz answers (404 until set).
// Paths are made absolute: clients run in other working directories.
func (s *Server) SetConfig(c DaemonConfig) {
	for _, p := range []*string{&c.RootDir, &c.LogDir, &c.ManifestDir, &c.Socket} {
		if a, err := filepath.Abs(*p); err == nil && *p != "" {
			*p = a
		}
	}
	s.config.Store(&c)
}

func (s *Server) configz(w http.ResponseWriter) bool {
	c := s.config.Load()
	if c == nil {
		return false
	}
	writeJSON(w, http.StatusOK, c)
	return true
}

// Config asks the daemon where it keeps things (/configz).
func (c *Client) Config(ctx context.Context) (*DaemonConfig, error) {
	var dc DaemonConfig
	if err := c.getJSON(ctx, "/configz", nil, &dc); err != nil {
		return nil, err
	}
	return &dc, nil
}
