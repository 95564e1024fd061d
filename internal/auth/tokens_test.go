package auth

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseTokens(t *testing.T) {
	tests := []struct {
		name, file string
		wantErr    string
	}{
		{name: "good", file: `
- token: a1
  project_id: alpha
  project_name: Alpha
  user_id: alice
  roles: [member, reader]
- {token: b1, project_id: beta, user_id: bob, roles: [admin]}
`},
		{name: "unknown role", file: "- {token: a, project_id: p, user_id: u, roles: [member]}\n- {token: b, project_id: p, user_id: u, roles: [owner]}\n",
			wantErr: `line 2: unknown role "owner"`},
		{name: "duplicate token", file: "- {token: a, project_id: p, user_id: u, roles: [member]}\n\n- {token: a, project_id: q, user_id: v, roles: [reader]}\n",
			wantErr: "line 3: duplicate token (first given on line 1)"},
		{name: "unknown key", file: "- token: a\n  project_id: p\n  user_id: u\n  role: [member]\n",
			wantErr: `line 4: unknown key "role"`},
		{name: "missing project", file: "- {token: a, user_id: u, roles: [member]}\n", wantErr: "line 1: project_id is missing"},
		{name: "missing user", file: "- {token: a, project_id: p, roles: [member]}\n", wantErr: "line 1: user_id is missing"},
		{name: "no roles", file: "- {token: a, project_id: p, user_id: u}\n", wantErr: "line 1: roles is missing"},
		{name: "token with a space", file: "- {token: 'a b', project_id: p, user_id: u, roles: [member]}\n", wantErr: "line 1: token must be printable ASCII"},
		{name: "project id with a slash", file: "- {token: a, project_id: a/b, user_id: u, roles: [member]}\n", wantErr: `line 1: project_id "a/b"`},
		{name: "two names for a project", file: "- {token: a, project_id: p, project_name: P, user_id: u, roles: [member]}\n- {token: b, project_id: p, project_name: Q, user_id: v, roles: [member]}\n",
			wantErr: `line 2: project p is named "Q" here but "P" on line 1`},
		{name: "roles not a list", file: "- token: a\n  project_id: p\n  user_id: u\n  roles:\n    x: y\n", wantErr: "line 5: cannot unmarshal"},
		{name: "not a list", file: "token: a\n", wantErr: "line 1: want a list of tokens"},
		{name: "empty", file: "", wantErr: "no tokens"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseTokens([]byte(tt.file))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestTokensAuthenticateAndReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("- {token: old, project_id: alpha, project_name: Alpha, user_id: alice, roles: [member]}\n")
	tokens, err := LoadTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := tokens.Authenticate(ctx, "old")
	want := Caller{ProjectID: "alpha", ProjectName: "Alpha", UserID: "alice", Roles: []string{"member"}}
	if err != nil || !reflect.DeepEqual(c, want) {
		t.Fatalf("Authenticate(old) = %+v, %v", c, err)
	}
	for _, bad := range []string{"", "ol", "old ", "old\x00", "nope"} {
		if _, err := tokens.Authenticate(ctx, bad); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("Authenticate(%q) = %v, want ErrUnauthorized", bad, err)
		}
	}

	// A bad file changes nothing.
	write("- {token: new, project_id: alpha, user_id: alice, roles: [superuser]}\n")
	if err := tokens.Reload(); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("Reload of a bad file: %v", err)
	}
	if _, err := tokens.Authenticate(ctx, "old"); err != nil {
		t.Fatalf("the old token stopped working after a failed reload: %v", err)
	}
	write("- {token: new, project_id: beta, user_id: bob, roles: [admin]}\n")
	if err := tokens.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := tokens.Authenticate(ctx, "old"); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("a removed token still works: %v", err)
	}
	if c, err := tokens.Authenticate(ctx, "new"); err != nil || !c.IsAdmin() || c.ProjectID != "beta" {
		t.Errorf("Authenticate(new) = %+v, %v", c, err)
	}
	if got := tokens.Projects(); !reflect.DeepEqual(got, []Project{{ID: "beta"}}) {
		t.Errorf("Projects() = %v", got)
	}
}

func TestAdminTokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens, err := LoadAdminToken(path)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := tokens.Authenticate(context.Background(), "s3cret"); err != nil || !reflect.DeepEqual(c, Admin) {
		t.Fatalf("Authenticate = %+v, %v", c, err)
	}
	if err := os.WriteFile(path, []byte("two words\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadAdminToken(path); err == nil {
		t.Fatal("a token file with a space was accepted")
	}
}
