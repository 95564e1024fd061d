// Package archtest holds no code: its test checks that the package graph
// is the one docs/ARCHITECTURE.md describes — every package has a row
// there, no package imports what its "must not" column forbids, and only
// internal/netns switches a thread's namespace. It is the test that fails
// when a change takes a shortcut across the layers (as etcd's forbids its
// client importing its server).
package archtest
