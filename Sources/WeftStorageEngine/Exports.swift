// The byte codec, the quantile sketch and the mergeable summaries live in the pure WeftAggregates
// target (so a coordinator merges partials without the storage engine); users of the engine see them
// as before.
@_exported import WeftAggregates
