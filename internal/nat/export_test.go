package nat

// SortSpec orders the lists of a spec as Inspect returns them.
var SortSpec = sortSpec
