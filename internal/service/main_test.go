package service_test

import (
	"os"
	"testing"

	"github.com/nsnet/nsnet/internal/store/storetest"
)

// TestMain stops the etcd that NSNET_TEST_STORE=etcd starts.
func TestMain(m *testing.M) { os.Exit(storetest.Main(m)) }
