package daemoncmd

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/daemon"
)

func TestConfig(t *testing.T) {
	tests := []struct {
		args    string
		want    daemon.Config
		wantErr string
	}{
		{
			args: "",
			want: daemon.Config{StateDir: daemon.DefaultStateDir, Socket: daemon.DefaultSocket, ResyncInterval: 30 * time.Second},
		},
		{
			args: "--state-dir /tmp/s --socket /tmp/s.sock --listen 127.0.0.1:9696 --token-file /tmp/t " +
				"--host-netns h1 --netns-prefix t1- --resync-interval 5s --log-level debug",
			want: daemon.Config{StateDir: "/tmp/s", Socket: "/tmp/s.sock", Listen: "127.0.0.1:9696", TokenFile: "/tmp/t",
				HostNetns: "h1", NetnsPrefix: "t1-", ResyncInterval: 5 * time.Second},
		},
		{args: "--log-level loud", wantErr: `--log-level "loud": want debug, info, warn or error`},
		{args: "--resync-interval 0s", wantErr: "--resync-interval 0s: must be positive"},
	}
	for _, tt := range tests {
		var f flags
		cmd := newCommand(&f)
		if err := cmd.ParseFlags(strings.Fields(tt.args)); err != nil {
			t.Fatal(err)
		}
		got, err := f.config(os.Stderr)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: err = %v, want %q", tt.args, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", tt.args, err)
		}
		if got.Logger == nil {
			t.Errorf("%q: no logger", tt.args)
		}
		got.Logger = nil
		if got != tt.want {
			t.Errorf("%q:\n got %+v\nwant %+v", tt.args, got, tt.want)
		}
	}
}
