using System.Runtime.CompilerServices;

namespace FastInval.Native;

/// <summary>Kinds of object a handle names (bits 24–31 of a handle). Later units (VT-d, SMMUv3, preload contexts) take
/// the next values.</summary>
internal enum HandleKind : byte
{
    Engine = 1,
    Iommufd = 2,

    // The units' section of the ABI (NativeExports.Units.cs) numbers its kinds from 16.
    GuestMemory = 16,
    Vtd = 17,
    Smmu = 18,
    Notifier = 19,
    AmdVi = 20,
}

/// <summary>An object whose handle may stand for its engine: entering such a handle as <see cref="HandleKind.Engine"/>
/// yields <see cref="Engine"/> (a unit's handle passed to the engine calls names the unit's caches).</summary>
internal interface IEngineHolder
{
    /// <summary>The engine the handle stands for.</summary>
    InvalidationEngine Engine { get; }
}

/// <summary>
/// The table behind every opaque handle of the C ABI. A handle is a 64-bit word: bits 0–23 slot index + 1 (so 0 is
/// never a handle), bits 24–31 the <see cref="HandleKind"/>, bits 32–63 the slot's generation when it was created.
/// </summary>
/// <remarks>
/// <para>Each slot has one 64-bit state word: generation in the high half (odd while the slot is live, even while it is
/// free) and the number of calls in flight in the low half. A call enters with a compare-and-swap that requires the
/// handle's generation and increments the count, and leaves with a decrement; destroying swaps (generation, 0 calls) for
/// (generation + 1, 0), so it fails with EBUSY while a call is in flight and every later call on that handle sees a
/// generation it does not carry (EBADF). A null, destroyed, forged or wrong-kind handle is therefore an error code, and
/// an object is never disposed under a running call.</para>
/// <para>Slots live in fixed chunks allocated on first use, so a lookup never races with a resize. Creation and
/// destruction take a lock (they allocate anyway); entering and leaving do not and allocate nothing.</para>
/// </remarks>
internal static class HandleTable
{
    private const int ChunkShift = 8;
    private const int ChunkSize = 1 << ChunkShift;
    private const int ChunkCount = 256;

    /// <summary>Most live handles (all kinds together).</summary>
    public const int Capacity = ChunkSize * ChunkCount;

    private const int IndexBits = 24;
    private const ulong IndexMask = (1UL << IndexBits) - 1;
    private const int KindShift = 24;
    private const int GenerationShift = 32;
    private const ulong CountMask = 0xFFFF_FFFF;

    private static readonly Slot[]?[] s_chunks = new Slot[ChunkCount][];
    private static readonly object s_lock = new();
    private static readonly Stack<int> s_free = new();
    private static int s_next;

    private sealed class Slot
    {
        public long State; // generation << 32 | calls in flight
        public object? Target;
        public HandleKind Kind;
    }

    /// <summary>Stores <paramref name="target"/> and returns its handle, or 0 when the table is full.</summary>
    public static ulong Add(object target, HandleKind kind)
    {
        lock (s_lock)
        {
            int index;
            if (s_free.Count != 0)
            {
                index = s_free.Pop();
            }
            else if (s_next < Capacity)
            {
                index = s_next++;
                s_chunks[index >> ChunkShift] ??= CreateChunk();
            }
            else
            {
                return 0;
            }

            Slot slot = s_chunks[index >> ChunkShift]![index & (ChunkSize - 1)];
            slot.Target = target;
            slot.Kind = kind;
            long generation = (long)((ulong)Volatile.Read(ref slot.State) >> GenerationShift) + 1; // even (free) -> odd (live)
            Volatile.Write(ref slot.State, generation << GenerationShift);
            return ((ulong)(uint)generation << GenerationShift) | ((ulong)(byte)kind << KindShift) | (uint)(index + 1);
        }
    }

    /// <summary>Enters a call on <paramref name="handle"/>: 0 and the object, or -EBADF. Every 0 must be paired with
    /// <see cref="Leave"/>. Asked for <see cref="HandleKind.Engine"/>, the handle of a VT-d, SMMUv3 or AMD-Vi unit enters that
    /// unit (so it cannot be destroyed during the call) and yields its engine.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // at each call site T is exact: the type test is one compare
    public static int Enter<T>(ulong handle, HandleKind kind, out T? target)
        where T : class
    {
        target = null;
        HandleKind actual = (HandleKind)(byte)(handle >> KindShift);
        Slot? slot = Find(handle, kind == HandleKind.Engine && actual is HandleKind.Vtd or HandleKind.Smmu or HandleKind.AmdVi ? actual : kind);
        if (slot is null)
        {
            return -NativeErrno.EBADF;
        }

        long generation = (long)(handle >> GenerationShift);
        while (true)
        {
            long state = Volatile.Read(ref slot.State);
            if ((long)((ulong)state >> GenerationShift) != generation || (generation & 1) == 0 || (state & (long)CountMask) == (long)CountMask)
            {
                return -NativeErrno.EBADF;
            }

            if (Interlocked.CompareExchange(ref slot.State, state + 1, state) == state)
            {
                break;
            }
        }

        object? found = slot.Target;
        if (kind != slot.Kind && found is IEngineHolder holder)
        {
            found = holder.Engine;
        }

        if (found is not T t)
        {
            Interlocked.Decrement(ref slot.State);
            return -NativeErrno.EBADF;
        }

        target = t;
        return 0;
    }

    /// <summary>Leaves a call entered with <see cref="Enter"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Leave(ulong handle)
    {
        int index = (int)(handle & IndexMask) - 1;
        Interlocked.Decrement(ref s_chunks[index >> ChunkShift]![index & (ChunkSize - 1)].State);
    }

    /// <summary>Removes <paramref name="handle"/>'s object and returns it: 0, -EBADF (not a live handle of that kind) or
    /// -EBUSY (a call on it is in flight; the handle stays valid).</summary>
    public static int Remove(ulong handle, HandleKind kind, out object? target)
    {
        target = null;
        Slot? slot = Find(handle, kind);
        if (slot is null)
        {
            return -NativeErrno.EBADF;
        }

        long generation = (long)(handle >> GenerationShift);
        if ((generation & 1) == 0)
        {
            return -NativeErrno.EBADF;
        }

        lock (s_lock)
        {
            long state = Volatile.Read(ref slot.State);
            if ((long)((ulong)state >> GenerationShift) != generation)
            {
                return -NativeErrno.EBADF;
            }

            if (Interlocked.CompareExchange(ref slot.State, (generation + 1) << GenerationShift, generation << GenerationShift) != generation << GenerationShift)
            {
                return -NativeErrno.EBUSY;
            }

            target = slot.Target;
            slot.Target = null;
            s_free.Push((int)(handle & IndexMask) - 1);
            return 0;
        }
    }

    /// <summary>Live handles (a leak check for tests).</summary>
    public static int Count
    {
        get
        {
            lock (s_lock)
            {
                return s_next - s_free.Count;
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Slot? Find(ulong handle, HandleKind kind)
    {
        int index = (int)(handle & IndexMask) - 1;
        if (index < 0 || index >= Capacity || (HandleKind)(byte)(handle >> KindShift) != kind)
        {
            return null;
        }

        Slot[]? chunk = Volatile.Read(ref s_chunks[index >> ChunkShift]);
        if (chunk is null)
        {
            return null;
        }

        Slot slot = chunk[index & (ChunkSize - 1)];
        return slot.Kind == kind ? slot : null;
    }

    private static Slot[] CreateChunk()
    {
        var chunk = new Slot[ChunkSize];
        for (int i = 0; i < chunk.Length; i++)
        {
            chunk[i] = new Slot();
        }

        return chunk;
    }
}
