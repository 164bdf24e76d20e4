import WeftModel
import WeftOTLP

/// Rebuilds the head from the WAL at startup.
public enum Recovery {
    public struct Report: Sendable {
        public var wal: WAL.ReplayReport
        public var spans = 0
        /// Entries that no longer decode (should not happen: only accepted requests are logged).
        public var undecodable = 0
    }

    /// Replays every WAL record into `head`, decoding with the same options as ingest.
    public static func replay(wal: WAL, into head: Head, options: DecodeOptions) throws -> Report {
        var spans = 0
        var undecodable = 0
        var decoder = OTLPRequestDecoder(options: options)
        let walReport = try wal.replay { record in
            guard let entry = try? WALEntry.parse(record) else {
                undecodable += 1
                return
            }
            var batch = SpanBatch()
            do {
                _ = try decoder.decode(entry.body, encoding: entry.encoding, into: &batch)
            } catch {
                undecodable += 1
                return
            }
            spans += batch.spanCount
            head.append(batch, org: entry.org)
        }
        return Report(wal: walReport, spans: spans, undecodable: undecodable)
    }
}
