/// The versioned binary form of a ``SpanBatch``: the payload of WAL records and of batches sent between
/// nodes.
///
/// Layout, all integers little-endian: `[version: UInt8][12 × UInt32 counts]` (strings beyond the
/// well-known ones, their total bytes, then the rows of resources, resource attributes, scopes, scope
/// attributes, spans, span attributes, events, event attributes, links, link attributes), the string
/// lengths and bytes, then every column in a fixed order. A column is `[width: UInt8][values]`: width 0
/// is one full-width value repeated for every row; 1, 2, 4 or 8 stores each value in that many bytes
/// (the fewest that hold the largest). Each table has one column that is never width 0, so a payload
/// cannot claim more rows than it has bytes, and rows whose columns would take more than
/// ``maxExpansion`` bytes of memory per payload byte are refused before anything is allocated.
///
/// ``decode(_:)`` checks everything (counts, widths, offsets, string and row references, value types)
/// and throws ``DecodeError`` on a torn or hostile payload.
public enum SpanBatchCodec {
    /// The encoding version written in the first byte.
    public static let version: UInt8 = 1

    /// Why a payload does not decode.
    public struct DecodeError: Error, Sendable, Equatable, CustomStringConvertible {
        public let description: String

        public init(_ description: String) { self.description = description }
    }

    static let headerCount = 1 + 12 * 4

    /// Most bytes of decoded columns per payload byte (beyond the first MiB). Real batches take one to
    /// three; the cap keeps a small hostile payload of constant columns from claiming gigabytes.
    public static let maxExpansion = 256

    /// The encoding of `batch`.
    public static func encode(_ batch: SpanBatch) -> [UInt8] {
        let bound = Self.encodedSizeBound(batch)
        return [UInt8](unsafeUninitializedCapacity: bound) { buffer, count in
            count = Self.encode(batch, into: UnsafeMutableRawBufferPointer(buffer))
        }
    }

    /// At least as many bytes as ``encode(_:into:)`` writes for `batch`.
    public static func encodedSizeBound(_ batch: SpanBatch) -> Int {
        var bound = ColumnSizeBound()
        var columns = batch
        columns.visitColumns(&bound)
        let strings = batch.strings
        let extra = strings.count - WellKnown.all.count
        return Self.headerCount + 1 + extra * 4 + (strings.bytes.count - Int(strings.offsets[WellKnown.all.count])) + bound.bytes
    }

    /// Writes the encoding of `batch` at the start of `out` (at least ``encodedSizeBound(_:)`` bytes);
    /// returns the bytes written.
    public static func encode(_ batch: SpanBatch, into out: UnsafeMutableRawBufferPointer) -> Int {
        precondition(out.count >= Self.encodedSizeBound(batch), "encoding buffer too small")
        var writer = ColumnWriter(out: out.baseAddress!)
        let strings = batch.strings
        let known = WellKnown.all.count
        let firstByte = Int(strings.offsets[known])
        writer.byte(Self.version)
        for n in [strings.count - known, strings.bytes.count - firstByte] + batch.tableRows {
            writer.uint32(UInt32(n))
        }
        strings.offsets.withUnsafeBufferPointer { offsets in
            writer.lengths(UnsafeBufferPointer(rebasing: offsets[known...]))
        }
        strings.bytes.withUnsafeBytes { all in
            writer.raw(UnsafeRawBufferPointer(rebasing: all[firstByte...]))
        }
        var columns = batch
        columns.visitColumns(&writer)
        return writer.at
    }

    /// Decodes a payload written by ``encode(_:)``, checking every count, offset and reference.
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(DecodeError) -> SpanBatch {
        guard bytes.count >= Self.headerCount, let base = bytes.baseAddress else {
            throw DecodeError("span batch of \(bytes.count) bytes is shorter than its \(Self.headerCount)-byte header")
        }
        guard bytes[0] == Self.version else {
            throw DecodeError("span batch has unknown encoding version \(bytes[0]) (this build reads \(Self.version))")
        }
        var counts = [Int]()
        for i in 0..<12 {
            let n = Int(UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 1 + 4 * i, as: UInt32.self)))
            // Every counted row or string costs at least one byte of payload.
            guard n <= bytes.count else {
                throw DecodeError("span batch claims \(n) \(Self.countNames[i]) in \(bytes.count) bytes")
            }
            counts.append(n)
        }
        let rows = Array(counts[2...])
        var estimate = DecodedSizeEstimate(rows: rows, bytes: counts[0] * 16 + counts[1])
        var schema = SpanBatch()
        schema.visitColumns(&estimate)
        guard estimate.bytes <= Self.maxExpansion * bytes.count + (1 << 20) else {
            throw DecodeError("span batch of \(bytes.count) bytes claims rows that would take \(estimate.bytes) bytes in memory (at most \(Self.maxExpansion) per payload byte)")
        }
        var reader = ColumnReader(base: base, end: bytes.count, at: Self.headerCount, rows: rows, strings: 0)
        var batch = SpanBatch()
        try reader.strings(count: counts[0], bytes: counts[1], into: &batch.strings)
        reader.stringCount = batch.strings.count
        try batch.visitColumns(&reader)
        guard reader.at == bytes.count else {
            throw DecodeError("span batch has \(bytes.count - reader.at) bytes after its last column")
        }
        return batch
    }

    static let countNames = [
        "strings", "string bytes", "resources", "resource attributes", "scopes", "scope attributes", "spans",
        "span attributes", "events", "event attributes", "links", "link attributes",
    ]
}

/// The tables of a batch, in header order.
enum BatchTable: Int {
    case resources, resourceAttrs, scopes, scopeAttrs, spans, spanAttrs, events, eventAttrs, links, linkAttrs
}

/// What a column holds, which fixes its length and how decoding checks it.
enum ColumnRule {
    /// One value per row of the table, any value.
    case plain(BatchTable)
    /// Like `plain` but never stored as a constant, so the table's row count is paid for in bytes.
    case anchor(BatchTable)
    /// String IDs, one per row.
    case strings(BatchTable)
    /// Like `strings`, never stored as a constant.
    case anchorStrings(BatchTable)
    /// Signed counts with ``SpanBatch/noTokens`` for absent, stored as ``ColumnRule/absentAsZero(_:)`` so
    /// absent is 0 and small counts stay narrow.
    case counts(BatchTable)
    /// Row numbers into another table, one per row.
    case index(BatchTable, into: BatchTable)
    /// Range starts of the rows of the second table owned by each row (one extra trailing entry).
    case offsets(BatchTable, of: BatchTable)

    /// Values in the column, given the row count of each table.
    func count(_ rows: [Int]) -> Int {
        if case .offsets(let t, _) = self { return rows[t.rawValue] + 1 }
        return rows[self.table.rawValue]
    }

    var table: BatchTable {
        switch self {
        case .plain(let t), .anchor(let t), .strings(let t), .anchorStrings(let t), .counts(let t), .index(let t, _), .offsets(let t, _):
            return t
        }
    }

    var allowsConstant: Bool {
        switch self {
        case .anchor, .anchorStrings: return false
        default: return true
        }
    }
}

extension ColumnRule {
    /// `Int64.min` → 0, `n ≥ 0` → `2n + 1`, negative `n` → large (a bijection: flip the sign bit, rotate left).
    static func absentAsZero(_ value: Int64) -> UInt64 {
        let flipped = UInt64(bitPattern: value) ^ (1 << 63)
        return flipped << 1 | flipped >> 63
    }

    /// The inverse of ``absentAsZero(_:)``.
    static func absentFromZero(_ stored: UInt64) -> Int64 {
        Int64(bitPattern: (stored >> 1 | stored << 63) ^ (1 << 63))
    }
}

/// Visits every column of a batch in encoding order (``SpanBatch/visitColumns(_:)``).
protocol BatchColumnVisitor {
    /// `Never` for visitors that only read the batch.
    associatedtype Failure: Error
    mutating func column<T: FixedWidthInteger>(_ values: inout [T], _ rule: ColumnRule) throws(Failure)
    mutating func floats(_ values: inout [Double], _ table: BatchTable) throws(Failure)
    mutating func attributes(_ attrs: inout AttributeColumns, _ table: BatchTable) throws(Failure)
}

extension SpanBatch {
    /// Row counts in ``BatchTable`` order.
    var tableRows: [Int] {
        [
            self.resourceCount, self.resourceAttrs.count, self.scopeCount, self.scopeAttrs.count, self.spanCount,
            self.attrs.count, self.eventTime.count, self.eventAttrs.count, self.linkSpanID.count, self.linkAttrs.count,
        ]
    }

    /// The column schema of the encoding: every column, once, in order.
    mutating func visitColumns<V: BatchColumnVisitor>(_ v: inout V) throws(V.Failure) {
        try v.column(&self.resourceServiceName, .anchorStrings(.resources))
        try v.column(&self.resourceSchemaURL, .strings(.resources))
        try v.column(&self.resourceDroppedAttrs, .plain(.resources))
        try v.column(&self.resourceAttrOffsets, .offsets(.resources, of: .resourceAttrs))
        try v.attributes(&self.resourceAttrs, .resourceAttrs)

        try v.column(&self.scopeName, .anchorStrings(.scopes))
        try v.column(&self.scopeVersion, .strings(.scopes))
        try v.column(&self.scopeSchemaURL, .strings(.scopes))
        try v.column(&self.scopeDroppedAttrs, .plain(.scopes))
        try v.column(&self.scopeAttrOffsets, .offsets(.scopes, of: .scopeAttrs))
        try v.attributes(&self.scopeAttrs, .scopeAttrs)

        try v.column(&self.spanID, .anchor(.spans))
        try v.column(&self.traceHigh, .plain(.spans))
        try v.column(&self.traceLow, .plain(.spans))
        try v.column(&self.parentSpanID, .plain(.spans))
        try v.column(&self.traceState, .strings(.spans))
        try v.column(&self.name, .strings(.spans))
        try v.column(&self.kind, .plain(.spans))
        try v.column(&self.startTime, .plain(.spans))
        try v.column(&self.endTime, .plain(.spans))
        try v.column(&self.flags, .plain(.spans))
        try v.column(&self.statusCode, .plain(.spans))
        try v.column(&self.statusMessage, .strings(.spans))
        try v.column(&self.resourceIndex, .index(.spans, into: .resources))
        try v.column(&self.scopeIndex, .index(.spans, into: .scopes))
        try v.column(&self.attrOffsets, .offsets(.spans, of: .spanAttrs))
        try v.attributes(&self.attrs, .spanAttrs)
        try v.column(&self.droppedAttrs, .plain(.spans))
        try v.column(&self.droppedEvents, .plain(.spans))
        try v.column(&self.droppedLinks, .plain(.spans))
        try v.column(&self.eventOffsets, .offsets(.spans, of: .events))
        try v.column(&self.linkOffsets, .offsets(.spans, of: .links))
        try v.column(&self.genAIProvider, .strings(.spans))
        try v.column(&self.genAIRequestModel, .strings(.spans))
        try v.column(&self.genAIResponseModel, .strings(.spans))
        try v.column(&self.inputTokens, .counts(.spans))
        try v.column(&self.outputTokens, .counts(.spans))
        try v.floats(&self.cost, .spans)

        try v.column(&self.eventTime, .anchor(.events))
        try v.column(&self.eventName, .strings(.events))
        try v.column(&self.eventDroppedAttrs, .plain(.events))
        try v.column(&self.eventAttrOffsets, .offsets(.events, of: .eventAttrs))
        try v.attributes(&self.eventAttrs, .eventAttrs)

        try v.column(&self.linkSpanID, .anchor(.links))
        try v.column(&self.linkTraceHigh, .plain(.links))
        try v.column(&self.linkTraceLow, .plain(.links))
        try v.column(&self.linkTraceState, .strings(.links))
        try v.column(&self.linkFlags, .plain(.links))
        try v.column(&self.linkDroppedAttrs, .plain(.links))
        try v.column(&self.linkAttrOffsets, .offsets(.links, of: .linkAttrs))
        try v.attributes(&self.linkAttrs, .linkAttrs)
    }
}

// MARK: - Size bound

/// Sums the largest size each column can take.
struct ColumnSizeBound: BatchColumnVisitor {
    typealias Failure = Never
    var bytes = 0

    mutating func column<T: FixedWidthInteger>(_ values: inout [T], _ rule: ColumnRule) {
        self.bytes += 1 + values.count * MemoryLayout<T>.size
    }

    mutating func floats(_ values: inout [Double], _ table: BatchTable) {
        self.bytes += 1 + values.count * 8
    }

    mutating func attributes(_ attrs: inout AttributeColumns, _ table: BatchTable) {
        self.bytes += 3 + attrs.count * 13
    }
}

/// Sums the memory the decoded columns of a payload will take, from its header's row counts.
struct DecodedSizeEstimate: BatchColumnVisitor {
    typealias Failure = Never
    let rows: [Int]
    var bytes: Int

    mutating func column<T: FixedWidthInteger>(_ values: inout [T], _ rule: ColumnRule) {
        self.bytes += rule.count(self.rows) * MemoryLayout<T>.size
    }

    mutating func floats(_ values: inout [Double], _ table: BatchTable) {
        self.bytes += self.rows[table.rawValue] * 8
    }

    mutating func attributes(_ attrs: inout AttributeColumns, _ table: BatchTable) {
        self.bytes += self.rows[table.rawValue] * 13
    }
}
