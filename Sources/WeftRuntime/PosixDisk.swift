#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import WeftStorageEngine

/// The real file system behind the ``Disk`` protocol. Keeps append descriptors open.
/// Not thread-safe: owned by one thread (the WAL committer, or startup before it).
public final class PosixDisk: Disk {
    private var descriptors: [String: Int32] = [:]

    public init() {}

    deinit {
        for fd in self.descriptors.values { close(fd) }
    }

    private func failure(_ what: String, _ path: String) -> DiskError {
        DiskError("\(what) \(path): \(String(cString: strerror(errno)))")
    }

    public func makeDirectory(_ path: String) throws {
        var partial = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            partial += "/" + component
            if mkdir(partial, 0o755) != 0 && errno != EEXIST { throw self.failure("cannot create directory", partial) }
        }
    }

    public func list(_ directory: String) throws -> [String] {
        guard let dir = opendir(directory) else { throw self.failure("cannot list", directory) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    public func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    public func read(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw self.failure("cannot open", path) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw self.failure("cannot stat", path) }
        let size = Int(st.st_size)
        var bytes = [UInt8](repeating: 0, count: size)
        var done = 0
        try bytes.withUnsafeMutableBytes { buf in
            while done < size {
                let n = Glibc.read(fd, buf.baseAddress! + done, size - done)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw self.failure("cannot read", path) }
                done += n
            }
        }
        return bytes
    }

    public func size(_ path: String) throws -> Int {
        var st = stat()
        guard stat(path, &st) == 0 else { throw self.failure("cannot stat", path) }
        return Int(st.st_size)
    }

    /// Opens, `pread`s and closes: shares no state, so any thread may call it.
    public func read(_ path: String, range: Range<Int>) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw self.failure("cannot open", path) }
        defer { close(fd) }
        var failed: DiskError? = nil
        let bytes = [UInt8](unsafeUninitializedCapacity: range.count) { buffer, count in
            var done = 0
            while done < range.count {
                let n = pread(fd, buffer.baseAddress! + done, range.count - done, off_t(range.lowerBound + done))
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else {
                    failed = self.failure("cannot read", path)
                    break
                }
                done += n
            }
            // Only bytes actually read are exposed.
            count = done
        }
        if let failed { throw failed }
        return bytes
    }

    private func descriptor(_ path: String) throws -> Int32 {
        if let fd = self.descriptors[path] { return fd }
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw self.failure("cannot open", path) }
        self.descriptors[path] = fd
        return fd
    }

    public func append(_ path: String, _ bytes: UnsafeRawBufferPointer) throws {
        let fd = try self.descriptor(path)
        var done = 0
        while done < bytes.count {
            let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw self.failure("cannot write", path) }
            done += n
        }
    }

    public func append(_ path: String, contentsOf chunks: [[UInt8]]) throws {
        let fd = try self.descriptor(path)
        var start = 0
        while start < chunks.count {
            let end = min(chunks.count, start + 64)
            try self.writeAll(fd, path, chunks[start..<end])
            start = end
        }
    }

    /// `writev` of up to 64 chunks, resuming after partial writes.
    private func writeAll(_ fd: Int32, _ path: String, _ chunks: ArraySlice<[UInt8]>) throws {
        var vectors: [iovec] = []
        vectors.reserveCapacity(chunks.count)
        try self.gather(chunks, &vectors) { vectors in
            var iov = vectors[...]
            while !iov.isEmpty {
                let n = iov.withUnsafeBufferPointer { writev(fd, $0.baseAddress, Int32($0.count)) }
                if n < 0 && errno == EINTR { continue }
                guard n >= 0 else { throw self.failure("cannot write", path) }
                var written = n
                while let first = iov.first, written >= first.iov_len {
                    written -= first.iov_len
                    iov = iov.dropFirst()
                }
                if written > 0, var first = iov.first {
                    first.iov_base = first.iov_base! + written
                    first.iov_len -= written
                    iov[iov.startIndex] = first
                }
            }
        }
    }

    /// Collects stable pointers to every chunk, then calls `body` while they are all valid.
    private func gather(_ chunks: ArraySlice<[UInt8]>, _ vectors: inout [iovec], _ body: ([iovec]) throws -> Void) throws {
        guard let first = chunks.first else { return try body(vectors) }
        try first.withUnsafeBytes { raw in
            vectors.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: raw.baseAddress), iov_len: raw.count))
            try self.gather(chunks.dropFirst(), &vectors, body)
        }
    }

    public func sync(_ path: String) throws {
        let fd = try self.descriptor(path)
        guard fdatasync(fd) == 0 else { throw self.failure("cannot sync", path) }
    }

    public func syncDirectory(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw self.failure("cannot open directory", path) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw self.failure("cannot sync directory", path) }
    }

    public func truncate(_ path: String, to length: Int) throws {
        guard Glibc.truncate(path, off_t(length)) == 0 else { throw self.failure("cannot truncate", path) }
    }

    public func rename(_ from: String, to: String) throws {
        if let fd = self.descriptors.removeValue(forKey: from) { close(fd) }
        if let fd = self.descriptors.removeValue(forKey: to) { close(fd) }
        guard Glibc.rename(from, to) == 0 else { throw self.failure("cannot rename to \(to)", from) }
    }

    public func remove(_ path: String) throws {
        if let fd = self.descriptors.removeValue(forKey: path) { close(fd) }
        guard unlink(path) == 0 else { throw self.failure("cannot remove", path) }
    }
}
