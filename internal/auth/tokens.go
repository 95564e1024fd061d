package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync/atomic"

	"gopkg.in/yaml.v3"
)

// Tokens is nsnet's embedded identity: a fixed set of tokens, each standing
// for one caller, read from a file. Reload re-reads the file and swaps the
// whole set at once, so a request sees either the old set or the new one and
// a file that fails to parse changes nothing.
type Tokens struct {
	path string
	read func(path string) (*tokenSet, error)
	set  atomic.Pointer[tokenSet]
}

type tokenSet struct {
	entries  []tokenEntry
	projects []Project
}

type tokenEntry struct {
	// digest is the SHA-256 of the token: comparing digests of equal
	// length keeps the comparison constant-time whatever the token's
	// length, and the set never holds a token in a form a log could show.
	digest [sha256.Size]byte
	caller Caller
}

// LoadTokens reads a tokens file (see parseTokens for its format).
func LoadTokens(path string) (*Tokens, error) {
	return load(path, readTokensFile)
}

// LoadAdminToken reads the --token-file shorthand: a file holding one
// token, on one line, that stands for the admin.
func LoadAdminToken(path string) (*Tokens, error) {
	return load(path, readAdminTokenFile)
}

func load(path string, read func(string) (*tokenSet, error)) (*Tokens, error) {
	t := &Tokens{path: path, read: read}
	set, err := read(path)
	if err != nil {
		return nil, err
	}
	t.set.Store(set)
	return t, nil
}

// Path is the file the tokens come from.
func (t *Tokens) Path() string { return t.path }

// Reload re-reads the file. On any error the current set stays in force.
func (t *Tokens) Reload() error {
	set, err := t.read(t.path)
	if err != nil {
		return err
	}
	t.set.Store(set)
	return nil
}

// Len is the number of tokens in force.
func (t *Tokens) Len() int { return len(t.set.Load().entries) }

// Projects lists the projects the tokens name, sorted by id.
func (t *Tokens) Projects() []Project { return slices.Clone(t.set.Load().projects) }

// Authenticate implements Authenticator. Every entry is compared, match or
// not, so the time taken says nothing about which token (if any) matched.
func (t *Tokens) Authenticate(_ context.Context, token string) (Caller, error) {
	if !WellFormed(token) {
		return Caller{}, ErrUnauthorized
	}
	digest := sha256.Sum256([]byte(token))
	var found *tokenEntry
	set := t.set.Load()
	for i := range set.entries {
		if subtle.ConstantTimeCompare(digest[:], set.entries[i].digest[:]) == 1 {
			found = &set.entries[i]
		}
	}
	if found == nil {
		return Caller{}, ErrUnauthorized
	}
	c := found.caller
	c.Roles = slices.Clone(c.Roles)
	return c, nil
}

func readTokensFile(path string) (*tokenSet, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokens file: %w", err)
	}
	set, err := parseTokens(raw)
	if err != nil {
		return nil, fmt.Errorf("tokens file %s: %w", path, err)
	}
	return set, nil
}

func readAdminTokenFile(path string) (*tokenSet, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	token := strings.TrimSpace(string(raw))
	if !WellFormed(token) {
		return nil, fmt.Errorf("token file %s must hold one token on one line, printable ASCII without spaces", path)
	}
	return &tokenSet{
		entries:  []tokenEntry{{digest: sha256.Sum256([]byte(token)), caller: Admin}},
		projects: []Project{{ID: Admin.ProjectID, Name: Admin.ProjectName}},
	}, nil
}

// tokenSpec is one entry of a tokens file.
type tokenSpec struct {
	Token       string   `yaml:"token"`
	ProjectID   string   `yaml:"project_id"`
	ProjectName string   `yaml:"project_name"`
	UserID      string   `yaml:"user_id"`
	Roles       []string `yaml:"roles"`
}

// projectIDPattern keeps project ids to characters that are safe in a
// namespace name, where instances of the project live (see
// docs/TENANCY.md), and in a URL path.
var projectIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// parseTokens parses a tokens file: a YAML list of entries
//
//   - token: 3f1c…            # what the client sends as X-Auth-Token
//     project_id: alpha       # letters, digits, '-', '_', '.'; at most 64
//     project_name: Alpha     # optional
//     user_id: alice
//     roles: [member]         # admin, member and/or reader
//
// Every problem is reported with the line it is on: an unknown key, a
// missing field, an unknown role, a token given twice, one project id with
// two names.
func parseTokens(raw []byte) (*tokenSet, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 {
		return nil, errors.New("no tokens: the file is empty")
	}
	list := doc.Content[0]
	if list.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("line %d: want a list of tokens (- token: …)", list.Line)
	}
	set := &tokenSet{}
	seen := map[[sha256.Size]byte]int{} // digest -> line
	names := map[string]Project{}
	nameLine := map[string]int{}
	for _, item := range list.Content {
		spec, err := decodeTokenSpec(item)
		if err != nil {
			return nil, err
		}
		if err := spec.check(item.Line); err != nil {
			return nil, err
		}
		digest := sha256.Sum256([]byte(spec.Token))
		if first, dup := seen[digest]; dup {
			return nil, fmt.Errorf("line %d: duplicate token (first given on line %d)", item.Line, first)
		}
		seen[digest] = item.Line
		if p, ok := names[spec.ProjectID]; ok && spec.ProjectName != "" && p.Name != "" && p.Name != spec.ProjectName {
			return nil, fmt.Errorf("line %d: project %s is named %q here but %q on line %d",
				item.Line, spec.ProjectID, spec.ProjectName, p.Name, nameLine[spec.ProjectID])
		}
		if p := names[spec.ProjectID]; p.Name == "" {
			names[spec.ProjectID] = Project{ID: spec.ProjectID, Name: spec.ProjectName}
			nameLine[spec.ProjectID] = item.Line
		}
		set.entries = append(set.entries, tokenEntry{digest: digest, caller: Caller{
			ProjectID: spec.ProjectID, UserID: spec.UserID, Roles: spec.Roles,
		}})
	}
	if len(set.entries) == 0 {
		return nil, fmt.Errorf("line %d: no tokens in the list", list.Line)
	}
	for i := range set.entries {
		c := &set.entries[i].caller
		c.ProjectName = names[c.ProjectID].Name
	}
	for _, p := range names {
		set.projects = append(set.projects, p)
	}
	sort.Slice(set.projects, func(i, j int) bool { return set.projects[i].ID < set.projects[j].ID })
	return set, nil
}

var tokenKeys = []string{"token", "project_id", "project_name", "user_id", "roles"}

func decodeTokenSpec(item *yaml.Node) (tokenSpec, error) {
	var spec tokenSpec
	if item.Kind != yaml.MappingNode {
		return spec, fmt.Errorf("line %d: want an entry with token, project_id, user_id and roles", item.Line)
	}
	for i := 0; i+1 < len(item.Content); i += 2 {
		if key := item.Content[i]; !slices.Contains(tokenKeys, key.Value) {
			return spec, fmt.Errorf("line %d: unknown key %q (keys are %s)", key.Line, key.Value, strings.Join(tokenKeys, ", "))
		}
	}
	if err := item.Decode(&spec); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) && len(te.Errors) > 0 {
			return spec, errors.New(te.Errors[0]) // "line 4: cannot unmarshal …"
		}
		return spec, fmt.Errorf("line %d: %w", item.Line, err)
	}
	return spec, nil
}

func (s *tokenSpec) check(line int) error {
	switch {
	case s.Token == "":
		return fmt.Errorf("line %d: token is missing", line)
	case !WellFormed(s.Token):
		return fmt.Errorf("line %d: token must be printable ASCII without spaces, at most 8 KiB", line)
	case s.ProjectID == "":
		return fmt.Errorf("line %d: project_id is missing", line)
	case !projectIDPattern.MatchString(s.ProjectID):
		return fmt.Errorf("line %d: project_id %q: use at most 64 letters, digits, '-', '_' or '.', starting with a letter or digit", line, s.ProjectID)
	case s.UserID == "":
		return fmt.Errorf("line %d: user_id is missing", line)
	case len(s.Roles) == 0:
		return fmt.Errorf("line %d: roles is missing: give admin, member or reader", line)
	}
	for _, r := range s.Roles {
		if r != RoleAdmin && r != RoleMember && r != RoleReader {
			return fmt.Errorf("line %d: unknown role %q: roles are admin, member and reader", line, r)
		}
	}
	return nil
}
