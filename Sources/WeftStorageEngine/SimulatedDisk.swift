/// An in-memory ``Disk`` that models what survives a crash: appended bytes are durable only after
/// `sync`, created and removed files only after `syncDirectory`. A crash keeps a chosen prefix of each
/// file's unsynced tail (a torn write), so tests can replay every crash point deterministically.
public final class SimulatedDisk: Disk {
    struct File {
        var content: [UInt8] = []
        var durable: [UInt8] = []
    }

    private var files: [String: File] = [:]
    private var directories: Set<String> = []
    /// Files whose creation is not yet durable, and removals not yet durable (with their durable bytes).
    private var uncommittedCreations: Set<String> = []
    private var uncommittedRemovals: [String: [UInt8]] = [:]
    /// When set, appends fail once a file would grow beyond this many bytes in total (ENOSPC).
    public var capacity: Int? = nil
    public private(set) var syncCount = 0

    public init() {}

    public func makeDirectory(_ path: String) throws { self.directories.insert(path) }

    public func list(_ directory: String) throws -> [String] {
        let prefix = directory + "/"
        return self.files.keys.filter { $0.hasPrefix(prefix) && !$0.dropFirst(prefix.count).contains("/") }
            .map { String($0.dropFirst(prefix.count)) }
    }

    public func exists(_ path: String) -> Bool { self.files[path] != nil || self.directories.contains(path) }

    public func read(_ path: String) throws -> [UInt8] {
        guard let f = self.files[path] else { throw DiskError("no such file: \(path)") }
        return f.content
    }

    public func size(_ path: String) throws -> Int {
        guard let f = self.files[path] else { throw DiskError("no such file: \(path)") }
        return f.content.count
    }

    public func read(_ path: String, range: Range<Int>) throws -> [UInt8] {
        guard let f = self.files[path] else { throw DiskError("no such file: \(path)") }
        guard range.lowerBound >= 0, range.upperBound <= f.content.count else { throw DiskError("read past the end of \(path)") }
        return Array(f.content[range])
    }

    public func append(_ path: String, _ bytes: UnsafeRawBufferPointer) throws {
        if let capacity, self.totalBytes + bytes.count > capacity {
            throw DiskError("no space left on device")
        }
        if self.files[path] == nil {
            self.files[path] = File()
            self.uncommittedCreations.insert(path)
        }
        self.files[path]!.content.append(contentsOf: bytes)
    }

    public func sync(_ path: String) throws {
        guard self.files[path] != nil else { throw DiskError("no such file: \(path)") }
        self.files[path]!.durable = self.files[path]!.content
        self.syncCount += 1
    }

    public func syncDirectory(_ path: String) throws {
        let prefix = path + "/"
        self.uncommittedCreations = self.uncommittedCreations.filter { !$0.hasPrefix(prefix) }
        self.uncommittedRemovals = self.uncommittedRemovals.filter { !$0.key.hasPrefix(prefix) }
    }

    public func truncate(_ path: String, to length: Int) throws {
        guard self.files[path] != nil else { throw DiskError("no such file: \(path)") }
        self.files[path]!.content.removeSubrange(min(length, self.files[path]!.content.count)...)
    }

    public func rename(_ from: String, to: String) throws {
        guard let f = self.files[from] else { throw DiskError("no such file: \(from)") }
        if self.files[to] != nil { try self.remove(to) }
        try self.remove(from)
        self.files[to] = f
        // The new name exists durably only after the directory is synced; a restored removal of the
        // same name (replaced above) comes back on a crash.
        self.uncommittedCreations.insert(to)
    }

    public func remove(_ path: String) throws {
        guard let f = self.files.removeValue(forKey: path) else { throw DiskError("no such file: \(path)") }
        if self.uncommittedCreations.remove(path) == nil {
            self.uncommittedRemovals[path] = f.durable
        }
    }

    /// Total bytes in all files.
    public var totalBytes: Int { self.files.values.reduce(0) { $0 + $1.content.count } }

    /// Bytes appended to a file since its last sync.
    public func unsyncedBytes(_ path: String) -> Int {
        guard let f = self.files[path] else { return 0 }
        return max(0, f.content.count - f.durable.count)
    }

    /// Simulates a power loss. `keep(path, unsynced)` says how many of a file's unsynced bytes reached
    /// the platter (0 loses them all).
    public func crash(keep: (String, Int) -> Int = { _, _ in 0 }) {
        for path in self.uncommittedCreations { self.files.removeValue(forKey: path) }
        for (path, durable) in self.uncommittedRemovals { self.files[path] = File(content: durable, durable: durable) }
        self.uncommittedCreations = []
        self.uncommittedRemovals = [:]
        for (path, file) in self.files {
            var survived = file.durable
            if file.content.count > file.durable.count, file.content.starts(with: file.durable) {
                let tail = file.content[file.durable.count...]
                let n = max(0, min(tail.count, keep(path, tail.count)))
                survived.append(contentsOf: tail.prefix(n))
            }
            self.files[path] = File(content: survived, durable: survived)
        }
    }

    /// Flips one byte of a file (for corruption tests).
    public func corrupt(_ path: String, at offset: Int) {
        guard self.files[path] != nil, offset < self.files[path]!.content.count else { return }
        self.files[path]!.content[offset] ^= 0xFF
        self.files[path]!.durable = self.files[path]!.content
    }
}
