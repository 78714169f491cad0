using System.Runtime.CompilerServices;

namespace FastInval.Caches;

/// <summary>
/// The writer lock of an engine and its caches: one interlocked compare-exchange to enter, a plain release store to
/// leave (a fill pays one atomic, not two). Re-entrant on the holding thread (a callback run inside <c>Execute</c> may
/// fill). Waiters spin, then yield, then sleep: writers hold it for a fill (tens of nanoseconds) or one batch.
/// </summary>
/// <remarks>Lookups never take it. Not fair; a writer that loops without pause can delay others on a loaded machine,
/// which is acceptable for a cache (no writer waits for another's progress).</remarks>
internal sealed class WriterLock
{
    private int _owner; // managed thread id of the holder, 0 = free
    private int _depth; // re-entries of the holder, touched only by it

    /// <summary>True when the calling thread holds the lock.</summary>
    public bool IsHeldByCurrentThread => Volatile.Read(ref _owner) == Environment.CurrentManagedThreadId;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Scope EnterScope()
    {
        int me = Environment.CurrentManagedThreadId;
        if (Interlocked.CompareExchange(ref _owner, me, 0) != 0)
        {
            EnterSlow(me);
        }

        return new Scope(this);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void EnterSlow(int me)
    {
        if (Volatile.Read(ref _owner) == me)
        {
            _depth++;
            return;
        }

        var spin = default(SpinWait);
        while (true)
        {
            spin.SpinOnce();
            if (Volatile.Read(ref _owner) == 0 && Interlocked.CompareExchange(ref _owner, me, 0) == 0)
            {
                return;
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Exit()
    {
        if (_depth != 0)
        {
            _depth--;
            return;
        }

        Volatile.Write(ref _owner, 0);
    }

    /// <summary>Leaves the lock when disposed (use with <c>using</c>).</summary>
    public readonly ref struct Scope
    {
        private readonly WriterLock _lock;

        public Scope(WriterLock writerLock) => _lock = writerLock;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Dispose() => _lock.Exit();
    }
}
