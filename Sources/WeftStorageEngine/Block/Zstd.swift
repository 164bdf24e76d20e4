import CZstd
import Synchronization

/// zstd compression of block sections (libzstd).
///
/// Contexts are reused: `ZSTD_compress` and `ZSTD_decompress` build a fresh context on every call,
/// which allocates it and probes the CPU's features with `cpuid`. Under a hypervisor each `cpuid`
/// traps to the host, and a trace lookup (two dozen small sections) spent an eighth of its time there.
public enum Zstd {
    /// Compresses `input` at `level`; nil if the library fails.
    public static func compress(_ input: UnsafeRawBufferPointer, level: Int32 = 3) -> [UInt8]? {
        let bound = ZSTD_compressBound(input.count)
        var out = [UInt8](repeating: 0, count: bound)
        let n = compressors.with { context in
            out.withUnsafeMutableBytes { dst in
                ZSTD_compressCCtx(context, dst.baseAddress, bound, input.baseAddress, input.count, level)
            }
        }
        guard let n, ZSTD_isError(n) == 0 else { return nil }
        out.removeSubrange(n...)
        return out
    }

    /// Decompresses exactly `size` bytes; throws if the frame is corrupt or of another size.
    public static func decompress(_ input: UnsafeRawBufferPointer, size: Int) throws(BlockFormatError) -> [UInt8] {
        var result = 0
        var made = false
        let out = [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            made = decompressors.with { context in
                result = ZSTD_decompressDCtx(context, buffer.baseAddress, size, input.baseAddress, input.count)
            } != nil
            // Only fully written output is exposed.
            count = made && ZSTD_isError(result) == 0 && result == size ? size : 0
        }
        guard made else { throw BlockFormatError("no memory for a zstd context") }
        guard ZSTD_isError(result) == 0, result == size, out.count == size else { throw BlockFormatError("corrupt compressed section") }
        return out
    }

    private static let compressors = ContextPool(create: { ZSTD_createCCtx() }, free: { ZSTD_freeCCtx($0) })
    private static let decompressors = ContextPool(create: { ZSTD_createDCtx() }, free: { ZSTD_freeDCtx($0) })
}

/// Idle zstd contexts, lent out one per call (so any thread may use any of them, never two at once).
/// At most ``kept`` stay idle; more are freed when returned.
final class ContextPool: Sendable {
    /// `OpaquePointer` is not `Sendable`; a context is only used by the one call that took it out.
    private struct Idle: @unchecked Sendable {
        var contexts: [OpaquePointer] = []
    }

    static let kept = 8
    private let idle = Mutex(Idle())
    private let create: @Sendable () -> OpaquePointer?
    private let free: @Sendable (OpaquePointer) -> Void

    init(create: @escaping @Sendable () -> OpaquePointer?, free: @escaping @Sendable (OpaquePointer) -> Void) {
        self.create = create
        self.free = free
    }

    /// `body`'s result with a context of its own; nil if no context could be made.
    func with<R>(_ body: (OpaquePointer) -> R) -> R? {
        guard let context = self.idle.withLock({ $0.contexts.popLast() }) ?? self.create() else { return nil }
        let result = body(context)
        let keep = self.idle.withLock { idle in
            guard idle.contexts.count < Self.kept else { return false }
            idle.contexts.append(context)
            return true
        }
        if !keep { self.free(context) }
        return result
    }
}
