/// The file operations the storage engine needs, so tests can inject torn writes, lost unsynced
/// data and crashes. Paths are plain strings; implementations need not be thread-safe.
public protocol Disk: AnyObject {
    func makeDirectory(_ path: String) throws
    /// File names (not paths) in a directory, unsorted.
    func list(_ directory: String) throws -> [String]
    func exists(_ path: String) -> Bool
    /// The whole file.
    func read(_ path: String) throws -> [UInt8]
    /// Appends to a file, creating it if needed. Data is durable only after ``sync(_:)``.
    func append(_ path: String, _ bytes: UnsafeRawBufferPointer) throws
    /// Appends several buffers in order with as few system calls as possible (`writev`).
    func append(_ path: String, contentsOf chunks: [[UInt8]]) throws
    /// Makes everything appended to the file so far durable (fsync).
    func sync(_ path: String) throws
    /// Makes the directory's entries (created/removed files) durable.
    func syncDirectory(_ path: String) throws
    func truncate(_ path: String, to length: Int) throws
    /// Atomically renames a file (replacing `to`); durable after ``syncDirectory(_:)``.
    func rename(_ from: String, to: String) throws
    func remove(_ path: String) throws
    /// Size of a file in bytes.
    func size(_ path: String) throws -> Int
    /// Bytes `range` of a file (`pread`); must be safe to call from several threads at once.
    func read(_ path: String, range: Range<Int>) throws -> [UInt8]
}

/// A disk error with a readable message.
public struct DiskError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { self.message }
}

extension Disk {
    /// Default: reads the whole file.
    public func size(_ path: String) throws -> Int { try self.read(path).count }

    /// Default: reads the whole file and slices it.
    public func read(_ path: String, range: Range<Int>) throws -> [UInt8] {
        let all = try self.read(path)
        guard range.lowerBound >= 0, range.upperBound <= all.count else { throw DiskError("read past the end of \(path)") }
        return Array(all[range])
    }

    /// Default: one append per chunk.
    public func append(_ path: String, contentsOf chunks: [[UInt8]]) throws {
        for chunk in chunks { try chunk.withUnsafeBytes { try self.append(path, $0) } }
    }
}
