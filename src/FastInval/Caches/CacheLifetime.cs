using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using FastInval.Internals;

namespace FastInval.Caches;

/// <summary>
/// The lifetime of one cache's native storage: the writer lock (shared by the caches of one engine), the disposed
/// flag, and the reader registry that lets <see cref="DisposeStorage"/> free the memory only once no lookup is inside it.
/// </summary>
/// <remarks>
/// <para><b>Readers</b> never lock and never write shared memory. Each thread owns a <see cref="ReaderSlot"/> (one cache
/// line, registered once per thread). A lookup stores the cache's id in its slot, then reads the disposed flag; on the
/// way out it stores 0. Neither access is interlocked: the fence a store-then-load needs is paid by the disposer instead
/// (asymmetric Dekker, as user-space RCU does with <c>membarrier</c>).</para>
/// <para><b>Dispose</b> sets the flag, takes and leaves the writer lock (no writer is left inside), calls
/// <see cref="Interlocked.MemoryBarrierProcessWide"/> (every thread's pending stores become visible: a reader that read
/// the flag as clear has its slot visibly set), then waits until no slot holds the cache's id, and only then frees.
/// A reader that starts later sees the flag and throws <see cref="ObjectDisposedException"/> before touching the
/// storage.</para>
/// </remarks>
internal sealed class CacheLifetime
{
    private static int s_nextId;
    private static readonly object s_registryLock = new();
    private static ReaderSlot[] s_slots = [];

    [ThreadStatic]
    private static ReaderSlot? t_slot;

    private readonly int _id = Interlocked.Increment(ref s_nextId);
    private readonly string _name;
    private int _disposed;

    public CacheLifetime(string name, WriterLock writerLock)
    {
        _name = name;
        WriterLock = writerLock;
    }

    /// <summary>Serializes writers (fills, invalidations, clears, snapshots, dispose); lookups never take it.</summary>
    public WriterLock WriterLock { get; }

    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>Throws <see cref="ObjectDisposedException"/> once disposal has begun.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void ThrowIfDisposed()
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            ThrowHelper.ObjectDisposed(_name);
        }
    }

    /// <summary>Reader side: marks this thread inside the cache; the caller must call <see cref="ExitRead"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ReaderSlot EnterRead()
    {
        ReaderSlot slot = t_slot ?? RegisterThread();
        Volatile.Write(ref slot.Inside, _id);
        if (Volatile.Read(ref _disposed) != 0)
        {
            Volatile.Write(ref slot.Inside, 0);
            ThrowHelper.ObjectDisposed(_name);
        }

        return slot;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void ExitRead(ReaderSlot slot) => Volatile.Write(ref slot.Inside, 0);

    /// <summary>Writer side: enters the writer lock and checks the flag under it (the caller disposes the scope).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public WriterLock.Scope EnterWrite()
    {
        WriterLock.Scope scope = WriterLock.EnterScope();
        if (_disposed != 0)
        {
            scope.Dispose();
            ThrowHelper.ObjectDisposed(_name);
        }

        return scope;
    }

    /// <summary>Marks the cache disposed, waits for writers and readers inside it to leave, then runs
    /// <paramref name="free"/>. Returns false (and frees nothing) when disposal had already begun.</summary>
    public bool DisposeStorage(Action free)
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return false;
        }

        // A writer that entered before the flag was set finishes first; one that enters after sees it under the lock.
        WriterLock.EnterScope().Dispose();
        Interlocked.MemoryBarrierProcessWide();
        ReaderSlot[] slots = Volatile.Read(ref s_slots);
        foreach (ReaderSlot slot in slots)
        {
            var spin = default(SpinWait);
            while (Volatile.Read(ref slot.Inside) == _id)
            {
                spin.SpinOnce();
            }
        }

        free();
        return true;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static ReaderSlot RegisterThread()
    {
        var slot = new ReaderSlot();
        lock (s_registryLock)
        {
            // Copy on write: a disposer iterates a snapshot without the lock. A slot registered after that snapshot
            // belongs to a thread that has not yet set it, so it will see the disposed flag.
            ReaderSlot[] old = s_slots;
            var grown = new ReaderSlot[old.Length + 1];
            old.CopyTo(grown, 0);
            grown[^1] = slot;
            Volatile.Write(ref s_slots, grown);
        }

        t_slot = slot;
        return slot;
    }
}

/// <summary>One thread's "inside cache N" word, alone on its cache line so lookups on different threads share nothing.</summary>
[StructLayout(LayoutKind.Explicit, Size = 128)]
internal sealed class ReaderSlot
{
    [FieldOffset(64)]
    public int Inside;
}
