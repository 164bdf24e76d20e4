// The partial answers a coordinator merges live in WeftAggregates; users of the query core see them
// as before.
@_exported import WeftAggregates
