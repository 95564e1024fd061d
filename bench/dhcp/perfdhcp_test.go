package main

import (
	"testing"
	"time"
)

// perfdhcp 2.2's final report of a rate run (trimmed; with -f and -F,
// the renewal and release blocks, which are not the exchange's) and of an
// avalanche.
const (
	perfRateOut = `Running: perfdhcp -4 -l bv0 -M macs -R 200 -r 1000 -p 2 -W 1000000 10.60.0.2
Scenario: basic.
Multi-thread mode enabled.
***Rate statistics***
Rate: 665.872 4-way exchanges/second, expected rate: 1000

***Malformed Packets***
Malformed packets: 0
***Statistics for: DISCOVER-OFFER***
sent packets: 1999
received packets: 1991
drops: 8
drops ratio: 0.4002 %
orphans: 0
rejected leases: 0
non unique addresses: 0

min delay: 0.098 ms
avg delay: 7.947 ms
max delay: 113.063 ms
std deviation: 1.030 ms
collected packets: 0

***Statistics for: REQUEST-ACK***
sent packets: 1991
received packets: 1990
drops: 1
drops ratio: 0.050 %
orphans: 2
rejected leases: 0
non unique addresses: 0

min delay: 2.226 ms
avg delay: 3.259 ms
max delay: 6.039 ms
std deviation: 1.606 ms
collected packets: 0

***Statistics for: REQUEST-ACK (renewal)***
sent packets: 198
received packets: 198
drops: 0
orphans: 0
avg delay: 0.136 ms
***Statistics for: RELEASE***
sent packets: 98
received packets: 0
drops: 98
min delay: inf ms
avg delay: min delay: n/a
`
	perfAvalancheOut = `Scenario: avalanche.
***Rate statistics***
Rate: 239.054 4-way exchanges/second
***Statistics for: DISCOVER-OFFER***
sent packets: 50
received packets: 50
drops: 0
avg delay: 4.282 ms
***Statistics for: REQUEST-ACK***
sent packets: 50
received packets: 50
drops: 0
avg delay: 4.917 ms

It took 00:01:02.208203 to provision 50 clients. 
Requests sent + resent: 100
Requests resent: 7
Responses received: 100
`
)

func TestParsePerfdhcp(t *testing.T) {
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	for _, tc := range []struct {
		name      string
		out       string
		want      perfRun
		lost      int
		completed int
	}{
		{"rate", perfRateOut, perfRun{
			do:   perfStats{sent: 1999, received: 1991, drops: 8, min: ms(0.098), avg: ms(7.947), max: ms(113.063)},
			ra:   perfStats{sent: 1991, received: 1990, drops: 1, orphans: 2, min: ms(2.226), avg: ms(3.259), max: ms(6.039)},
			rate: 665.872,
		}, 9, 1990},
		{"avalanche", perfAvalancheOut, perfRun{
			do:   perfStats{sent: 50, received: 50, avg: ms(4.282)},
			ra:   perfStats{sent: 50, received: 50, avg: ms(4.917)},
			rate: 239.054, took: 62*time.Second + ms(208.203), resent: 7,
		}, 0, 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parsePerfdhcp(tc.out)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("parsePerfdhcp:\n got %+v\nwant %+v", got, tc.want)
			}
			if got.lost() != tc.lost || got.completed() != tc.completed {
				t.Errorf("lost %d completed %d, want %d %d", got.lost(), got.completed(), tc.lost, tc.completed)
			}
		})
	}
	if _, err := parsePerfdhcp("perfdhcp: no route\n"); err == nil {
		t.Error("a report without statistics parsed")
	}
}

func TestMergePerf(t *testing.T) {
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	got := mergePerf([]perfRun{
		{do: perfStats{sent: 10, received: 10, min: ms(2), avg: ms(4), max: ms(9)}, ra: perfStats{sent: 10, received: 9, drops: 1, avg: ms(1)}, rate: 100, took: ms(300), resent: 1},
		{do: perfStats{sent: 30, received: 30, min: ms(1), avg: ms(8), max: ms(5)}, ra: perfStats{sent: 30, received: 27, drops: 3, avg: ms(5)}, rate: 50, took: ms(200), resent: 2},
		{}, // a generator that received nothing does not set the minimum
	})
	want := perfRun{
		do:   perfStats{sent: 40, received: 40, min: ms(1), avg: ms(7), max: ms(9)},
		ra:   perfStats{sent: 40, received: 36, drops: 4, avg: ms(4)},
		rate: 150, took: ms(300), resent: 3,
	}
	if got != want {
		t.Errorf("mergePerf:\n got %+v\nwant %+v", got, want)
	}
	for _, tc := range []struct{ rate, k int }{{250, 4}, {1000, 4}, {3, 4}, {1500, 7}} {
		sum := 0
		for g := range tc.k {
			sum += split(tc.rate, g, tc.k)
		}
		if sum != tc.rate {
			t.Errorf("split(%d) over %d: shares add up to %d", tc.rate, tc.k, sum)
		}
	}
}
