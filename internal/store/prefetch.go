package store

// Want names what a transaction is about to read: one record (ID), a
// whole kind (All), or the first records of a Range from From to To.
type Want struct {
	Kind     Kind
	ID       string
	All      bool
	From, To string
	span     bool
}

// Span wants what Range(kind, from, to, …) reads first: its first batch
// of records (a seek that stops early reads no more).
func Span(kind Kind, from, to string) Want { return Want{Kind: kind, From: from, To: to, span: true} }

// Record wants the record kind/id.
func Record(kind Kind, id string) Want { return Want{Kind: kind, ID: id} }

// Every wants the whole kind, as List reads it.
func Every(kind Kind) Want { return Want{Kind: kind, All: true} }

// Prefetcher is a Reader that can read many records in one request. A
// wrapper of a Reader implements it by passing the call on (Prefetch).
type Prefetcher interface {
	Prefetch(wants ...Want) error
}

// Prefetch tells r what its caller is about to read, so that a store
// whose reads are round trips (etcd) reads them all in one: each later
// Get or List of a wanted record or kind is then answered from what the
// prefetch read, at the transaction's snapshot. Nothing changes what the
// transaction read as far as its commit is concerned: a record or kind
// prefetched but never read is not checked for conflicts. Readers that
// read locally (bbolt), and wrappers that do not pass it on, ignore it; so may a caller its error, which the next read returns again.
func Prefetch(r Reader, wants ...Want) error {
	if p, ok := r.(Prefetcher); ok && len(wants) > 0 {
		return p.Prefetch(wants...)
	}
	return nil
}
