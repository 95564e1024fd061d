package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/nsnet/nsnet/internal/auth"
)

// identity is how the daemon's TCP listener checks tokens.
type identity struct {
	mode          string // "tokens", "token-file", "keystone" or "" (no TCP)
	authenticator auth.Authenticator
	tokens        *auth.Tokens          // the file SIGHUP re-reads, if any
	projects      func() []auth.Project // nil unless the tokens file answers identity look-ups
	// adminToken is the --token-file's token, for the web view's link.
	adminToken string
}

// newIdentity sets up the one way of checking tokens that cfg names. TCP
// without one would be an open door, so --listen without any is fatal, as
// is naming more than one.
func newIdentity(cfg Config, log *slog.Logger) (*identity, error) {
	given := 0
	for _, set := range []bool{cfg.TokensFile != "", cfg.TokenFile != "", cfg.Keystone.URL != ""} {
		if set {
			given++
		}
	}
	switch {
	case given > 1:
		return nil, errors.New("use one of --tokens, --token-file and --keystone-url")
	case cfg.Listen == "" && given == 0:
		return &identity{}, nil
	case cfg.Listen == "":
		return nil, errors.New("--tokens, --token-file and --keystone-url are for the TCP API: add --listen")
	case given == 0:
		return nil, errors.New("--listen needs --tokens, --token-file or --keystone-url: the API on TCP refuses to run without authentication")
	}

	if cfg.Keystone.URL != "" {
		ks, err := auth.NewKeystone(cfg.Keystone)
		if err != nil {
			return nil, err
		}
		log.Info("validating tokens with Keystone", "url", cfg.Keystone.URL, "service_user", cfg.Keystone.Username)
		return &identity{mode: "keystone", authenticator: ks}, nil
	}

	path, load, mode := cfg.TokensFile, auth.LoadTokens, "tokens"
	if cfg.TokenFile != "" {
		path, load, mode = cfg.TokenFile, auth.LoadAdminToken, "token-file"
	}
	warnIfReadable(path, log)
	tokens, err := load(path)
	if err != nil {
		return nil, err
	}
	log.Info("tokens loaded", "file", path, "tokens", tokens.Len())
	id := &identity{mode: mode, authenticator: tokens, tokens: tokens, projects: tokens.Projects}
	if cfg.TokenFile != "" {
		raw, err := os.ReadFile(cfg.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", cfg.TokenFile, err)
		}
		id.adminToken = strings.TrimSpace(string(raw))
	}
	return id, nil
}

// reload re-reads the tokens file. A file that does not parse leaves the
// tokens in force as they were, and says why.
func (id *identity) reload(log *slog.Logger) {
	if id.tokens == nil {
		log.Info("SIGHUP: nothing to reload (no tokens file)")
		return
	}
	warnIfReadable(id.tokens.Path(), log)
	if err := id.tokens.Reload(); err != nil {
		log.Error("tokens not reloaded; the previous tokens stay in force", "err", err)
		return
	}
	log.Info("tokens reloaded", "file", id.tokens.Path(), "tokens", id.tokens.Len())
}

// warnIfReadable warns about a tokens file others can read: every token in
// it is a password.
func warnIfReadable(path string, log *slog.Logger) {
	info, err := os.Stat(path)
	if err == nil && info.Mode().Perm()&0o077 != 0 {
		log.Warn(fmt.Sprintf("%s is readable by other users; chmod 600 it", path), "path", path)
	}
}
